#include "genmodels/flow/flow.h"

#include <cmath>

#include "genmodels/core/error.h"

namespace gm::flow {

int64_t auto_levels(const std::vector<int64_t>& shape) {
  if (shape.size() != 3) return 1;
  int64_t h = shape[1], w = shape[2], levels = 0;
  while (levels < 3 && h % 2 == 0 && w % 2 == 0) h /= 2, w /= 2, ++levels;
  return std::max<int64_t>(levels, 1);
}

void FlowImpl::add(std::shared_ptr<Bijection> b) {
  items_module_->push_back(b);
  items_.push_back({std::move(b), nullptr});
}

void FlowImpl::add_split(std::shared_ptr<Split> s) {
  items_module_->push_back(s);
  items_.push_back({nullptr, std::move(s)});
}

FlowImpl::FlowImpl(FlowOptions o) : options_(std::move(o)) {
  items_module_ = register_module("items", torch::nn::ModuleList());
  const auto& s = options_.shape;
  if (s.empty()) throw Error("flow: empty data shape");
  if (options_.arch != "glow" && options_.arch != "realnvp")
    throw Error("flow: unknown architecture '" + options_.arch + "' (glow or realnvp)");
  if (options_.steps < 1) throw Error("model.steps must be >= 1");
  const bool glow = options_.arch == "glow";
  CouplingOptions co;
  co.hidden = options_.hidden;
  co.res_blocks = options_.res_blocks;
  co.mlp_layers = options_.mlp_layers;
  const std::string scale = options_.scale == "auto" ? (glow ? "sigmoid" : "tanh") : options_.scale;
  if (scale != "sigmoid" && scale != "tanh")
    throw Error("model.coupling_scale: unknown '" + scale + "' (sigmoid or tanh)");
  co.scale = scale == "sigmoid" ? ScaleFn::Sigmoid : ScaleFn::Tanh;
  co.scale_bound = options_.scale_bound;
  co.bf16 = options_.bf16;
  co.channels_last = options_.channels_last;

  if (s.size() == 1) {  // vectors
    const int64_t D = s[0];
    if (D < 2) throw Error("flow: vector data needs at least 2 dimensions");
    co.image = false;
    co.channels = D;
    co.mask = Mask::Half;
    for (int64_t k = 0; k < options_.steps; ++k) {
      co.parity = k % 2 == 1;
      if (glow) {
        add(std::make_shared<ActNorm>(D, false));
        add(std::make_shared<InvConv1x1>(D, false));
      }
      add(std::make_shared<AffineCoupling>(co));
    }
    latent_shapes_.push_back({D});
    return;
  }
  if (s.size() != 3) throw Error("flow: data must be images (C x H x W) or vectors");
  const int64_t K = options_.num_classes;
  const int64_t L = options_.levels > 0 ? options_.levels : auto_levels(s);
  int64_t C = s[0], H = s[1], W = s[2];
  {
    int64_t h = H, w = W;
    for (int64_t l = 0; l < (glow ? L : L - 1); ++l) {
      if (h % 2 || w % 2)
        throw Error("model.levels=" + std::to_string(L) + " needs sides divisible by 2^" +
                    std::to_string(glow ? L : L - 1) + ", got " + std::to_string(H) + "x" +
                    std::to_string(W) + "; lower model.levels");
      h /= 2, w /= 2;
    }
  }
  co.image = true;
  for (int64_t l = 0; l < L; ++l) {
    const bool last = l == L - 1;
    if (glow) {
      add(std::make_shared<Squeeze>());
      C *= 4, H /= 2, W /= 2;
      co.channels = C;
      co.mask = Mask::Channel;
      for (int64_t k = 0; k < options_.steps; ++k) {
        add(std::make_shared<ActNorm>(C, true));
        add(std::make_shared<InvConv1x1>(C, true));
        co.parity = false;  // the 1x1 convolution mixes the halves
        add(std::make_shared<AffineCoupling>(co));
      }
    } else {
      co.channels = C;
      co.mask = Mask::Checkerboard;
      const int64_t n_board = last ? options_.steps + 1 : options_.steps;
      for (int64_t k = 0; k < n_board; ++k) {
        co.parity = k % 2 == 1;
        add(std::make_shared<AffineCoupling>(co));
        add(std::make_shared<ActNorm>(C, true));
      }
      if (!last) {
        add(std::make_shared<Squeeze>());
        C *= 4, H /= 2, W /= 2;
        co.channels = C;
        co.mask = Mask::Channel;
        for (int64_t k = 0; k < options_.steps; ++k) {
          co.parity = k % 2 == 1;
          add(std::make_shared<AffineCoupling>(co));
          add(std::make_shared<ActNorm>(C, true));
        }
      }
    }
    if (!last) {
      add_split(std::make_shared<Split>(C, glow && options_.learned_prior, K,
                                        std::vector<int64_t>{H, W}));
      latent_shapes_.push_back({C / 2, H, W});
      C -= C / 2;
    }
  }
  latent_shapes_.push_back({C, H, W});
  if (K > 0)
    top_prior_ =
        register_module("top_prior", std::make_shared<ClassPrior>(K, latent_shapes_.back()));
}

std::pair<std::vector<torch::Tensor>, torch::Tensor> FlowImpl::encode(const torch::Tensor& x,
                                                                      const torch::Tensor& y) {
  std::vector<torch::Tensor> latents;
  torch::Tensor logdet = torch::zeros({x.size(0)}, x.options());
  torch::Tensor h = x;
  for (auto& it : items_) {
    if (it.bijection) {
      h = it.bijection->forward(h, logdet);
    } else {
      auto [kept, z] = it.split->forward(h, logdet, y);
      latents.push_back(z);
      h = kept;
    }
  }
  latents.push_back(top_prior_ ? top_prior_->whiten(h, y, logdet) : h);
  return {latents, logdet};
}

torch::Tensor FlowImpl::decode(const std::vector<torch::Tensor>& latents, const torch::Tensor& y) {
  if (latents.size() != latent_shapes_.size())
    throw Error("flow: decode needs " + std::to_string(latent_shapes_.size()) + " latents");
  size_t next = latents.size() - 1;
  torch::Tensor h = top_prior_ ? top_prior_->colour(latents[next], y) : latents[next];
  for (auto it = items_.rbegin(); it != items_.rend(); ++it) {
    if (it->bijection)
      h = it->bijection->inverse(h);
    else
      h = it->split->inverse(h, latents[--next], y);
  }
  return h;
}

torch::Tensor FlowImpl::log_prob(const torch::Tensor& x, const torch::Tensor& y) {
  auto [latents, logdet] = encode(x, y);
  torch::Tensor lp = logdet;
  for (const auto& z : latents) lp = lp + standard_normal_log_prob(z);
  return lp;
}

torch::Tensor FlowImpl::sample(int64_t n, double temperature, at::Generator& gen,
                               const torch::Tensor& y) {
  std::vector<torch::Tensor> latents;
  for (const auto& s : latent_shapes_) {
    std::vector<int64_t> shape = {n};
    shape.insert(shape.end(), s.begin(), s.end());
    latents.push_back(temperature * at::randn(shape, gen, torch::kFloat32));
  }
  auto dev = parameters().empty() ? torch::Device(torch::kCPU) : parameters().front().device();
  for (auto& z : latents) z = z.to(dev);
  return decode(latents, y.defined() ? y.to(dev) : y);
}

torch::Tensor logit_transform(const torch::Tensor& u, double alpha, torch::Tensor& logdet) {
  torch::Tensor p = alpha + (1.0 - 2.0 * alpha) * u;
  torch::Tensor lp = torch::log(p), l1p = torch::log1p(-p);
  // dy/du = (1 - 2 alpha) / (p (1 - p))
  logdet = logdet + (std::log(1.0 - 2.0 * alpha) - lp - l1p).flatten(1).sum(1);
  return lp - l1p;
}

torch::Tensor logit_inverse(const torch::Tensor& y, double alpha) {
  return (torch::sigmoid(y) - alpha) / (1.0 - 2.0 * alpha);
}

torch::Tensor log_prob_grid(FlowImpl& flow, double extent, int64_t size) {
  torch::NoGradGuard ng;
  const double h = 2 * extent / size;
  torch::Tensor c = -extent + h * (torch::arange(size, torch::kFloat32) + 0.5);
  torch::Tensor ys = c.flip(0).view({size, 1}).expand({size, size});
  torch::Tensor xs = c.view({1, size}).expand({size, size});
  torch::Tensor pts = torch::stack({xs.reshape(-1), ys.reshape(-1)}, 1);
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < pts.size(0); i += 16384)
    out.push_back(flow.log_prob(pts.narrow(0, i, std::min<int64_t>(16384, pts.size(0) - i))));
  return torch::cat(out).view({size, size});
}

}  // namespace gm::flow
