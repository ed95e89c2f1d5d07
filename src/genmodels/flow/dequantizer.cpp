// Variational dequantisation of Flow++ (Ho et al. 2019, sec. 3.1, eqs. 11-13); see dequantizer.h.
#include "genmodels/flow/dequantizer.h"

#include <ATen/autocast_mode.h>

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/flow/blocks.h"

namespace gm::flow {

namespace nn = torch::nn;

namespace {

torch::Tensor per_example_sum(const torch::Tensor& t) { return t.flatten(1).sum(1); }

nn::Conv2d conv(int64_t in, int64_t out, int64_t k) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).padding(k / 2));
}

// Switches CPU autocast off for its lifetime: the dequantiser is fp32 inside a bf16 model.
class NoAutocast {
 public:
  NoAutocast() : was_enabled_(at::autocast::is_cpu_enabled()) {
    at::autocast::set_cpu_enabled(false);
  }
  ~NoAutocast() { at::autocast::set_cpu_enabled(was_enabled_); }
  NoAutocast(const NoAutocast&) = delete;
  NoAutocast& operator=(const NoAutocast&) = delete;

 private:
  bool was_enabled_;
};

// Checkerboard mask (1 = conditioning part), 1 x 1 x H x W.
torch::Tensor checkerboard(const torch::Tensor& x, bool parity) {
  const int64_t H = x.size(2), W = x.size(3);
  torch::Tensor i = torch::arange(H, x.options().dtype(torch::kLong)).view({H, 1});
  torch::Tensor j = torch::arange(W, x.options().dtype(torch::kLong)).view({1, W});
  return ((i + j + (parity ? 1 : 0)) % 2 == 0).to(x.dtype()).view({1, 1, H, W});
}

// An affine coupling on eps whose network also sees the features of k (Flow++ sec. 3.1: the
// dequantisation flow is conditioned on x through its coupling networks):
//   y = b eps + (1 - b) (eps exp(s) + t),  (s, t) = NN(b eps, features(k)),
// s = a tanh(h) with a learned per channel (RealNVP's bounded scale, Dinh et al. 2017 sec. 4.1);
// the last convolution starts at zero, so every coupling starts as the identity.
struct ConditionalCouplingImpl : nn::Module {
  ConditionalCouplingImpl(int64_t channels, int64_t features, int64_t hidden, bool parity)
      : parity(parity) {
    net = register_module(
        "net", nn::Sequential(conv(channels + features, hidden, 3), nn::ReLU(),
                              conv(hidden, hidden, 1), nn::ReLU(), conv(hidden, 2 * channels, 3)));
    torch::NoGradGuard ng;
    for (auto& p : net->ptr(4)->parameters()) p.zero_();
    scale = register_parameter("scale", torch::ones({1, channels, 1, 1}));
  }

  // {s, t} on the transformed part (zero on the conditioning part), from b * x.
  std::pair<torch::Tensor, torch::Tensor> scale_shift(const torch::Tensor& x,
                                                      const torch::Tensor& feat,
                                                      const torch::Tensor& b) {
    auto h = net->forward(torch::cat({x * b, feat}, 1)).chunk(2, 1);
    return {scale * torch::tanh(h[0]) * (1.0 - b), h[1] * (1.0 - b)};
  }

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& feat, torch::Tensor& logdet) {
    auto [s, t] = scale_shift(x, feat, checkerboard(x, parity));
    logdet = logdet + per_example_sum(s);
    return x * torch::exp(s) + t;
  }

  torch::Tensor inverse(const torch::Tensor& y, const torch::Tensor& feat) {
    auto [s, t] = scale_shift(y, feat, checkerboard(y, parity));  // b y = b x
    return (y - t) * torch::exp(-s);
  }

  bool parity;
  nn::Sequential net{nullptr};
  torch::Tensor scale;
};
TORCH_MODULE(ConditionalCoupling);

}  // namespace

DequantizerImpl::DequantizerImpl(DequantizerOptions o) : options_(std::move(o)) {
  if (options_.shape.size() != 3)
    throw Error("model.dequantization=variational needs image data (C x H x W)");
  if (options_.couplings < 1)
    throw Error("model.dequantizer_couplings must be >= 1, got " +
                std::to_string(options_.couplings));
  if (options_.hidden < 1)
    throw Error("model.dequantizer_hidden must be >= 1, got " + std::to_string(options_.hidden));
  // Even sides: the flow works on 2x2 space-to-depth blocks (RealNVP sec. 3.6), 4C channels at a
  // quarter of the positions, which makes its convolutions about 4x cheaper at equal width.
  squeeze_ = options_.shape[1] % 2 == 0 && options_.shape[2] % 2 == 0;
  const int64_t C = options_.shape[0] * (squeeze_ ? 4 : 1), F = options_.hidden;
  // Features of k: two 3x3 convolutions.
  features_ = register_module("features",
                              nn::Sequential(conv(C, F, 3), nn::ReLU(), conv(F, F, 3), nn::ReLU()));
  couplings_ = register_module("couplings", nn::ModuleList());
  for (int64_t i = 0; i < options_.couplings; ++i)
    couplings_->push_back(ConditionalCoupling(C, F, options_.hidden, i % 2 == 1));
  log_scale_ = register_parameter("log_scale", torch::zeros({1, C, 1, 1}));
  shift_ = register_parameter("shift", torch::zeros({1, C, 1, 1}));
}

torch::Tensor DequantizerImpl::to_flow_layout(const torch::Tensor& x) const {
  if (!squeeze_) return x;
  torch::Tensor unused;
  return Squeeze().forward(x, unused);  // volume-preserving: no log-determinant
}

torch::Tensor DequantizerImpl::from_flow_layout(const torch::Tensor& x) const {
  return squeeze_ ? Squeeze().inverse(x) : x;
}

torch::Tensor DequantizerImpl::features(const torch::Tensor& levels) {
  // the data loader's [-1, 1] scale
  return features_->forward(to_flow_layout(levels / 127.5 - 1.0));
}

torch::Tensor DequantizerImpl::flow_forward(const torch::Tensor& eps, const torch::Tensor& feat,
                                            torch::Tensor& logdet) {
  torch::Tensor h = eps;
  for (const auto& m : *couplings_) h = m->as<ConditionalCouplingImpl>()->forward(h, feat, logdet);
  // per-channel affine: log|det| = H W sum log-scale
  logdet = logdet + double(h.size(2) * h.size(3)) * log_scale_.sum();
  return h * torch::exp(log_scale_) + shift_;
}

torch::Tensor DequantizerImpl::forward(const torch::Tensor& levels, const torch::Tensor& eps,
                                       torch::Tensor& logdet) {
  NoAutocast fp32;
  torch::Tensor y = from_flow_layout(flow_forward(to_flow_layout(eps), features(levels), logdet));
  // u = Phi(y): log du/dy = log N(y; 0, 1)
  logdet = logdet + standard_normal_log_prob(y);
  return torch::special::ndtr(y);
}

torch::Tensor DequantizerImpl::inverse(const torch::Tensor& levels, const torch::Tensor& u) {
  NoAutocast fp32;
  torch::Tensor feat = features(levels);
  torch::Tensor h = (to_flow_layout(torch::special::ndtri(u)) - shift_) * torch::exp(-log_scale_);
  for (int64_t i = int64_t(couplings_->size()) - 1; i >= 0; --i)
    h = couplings_[i]->as<ConditionalCouplingImpl>()->inverse(h, feat);
  return from_flow_layout(h);
}

std::pair<torch::Tensor, torch::Tensor> DequantizerImpl::sample(const torch::Tensor& levels,
                                                                const torch::Tensor& eps) {
  torch::Tensor logdet = torch::zeros({eps.size(0)}, eps.options());
  torch::Tensor u = forward(levels, eps, logdet);
  return {u, standard_normal_log_prob(eps) - logdet};  // eq. 11: log q = log N(eps) - log|det|
}

torch::Tensor DequantizerImpl::log_prob(const torch::Tensor& levels, const torch::Tensor& u) {
  torch::Tensor eps = inverse(levels, u);
  return sample(levels, eps).second;
}

torch::Tensor dequantized_log_likelihood(const DequantizedLogDensity& log_density,
                                         DequantizerImpl* dequantizer, const torch::Tensor& levels,
                                         int64_t draws, at::Generator& gen) {
  if (draws < 1)
    throw Error("dequantisation draws per image (model.eval_samples, eval --k) must be >= 1, got " +
                std::to_string(draws));
  std::vector<torch::Tensor> weights;  // log p(k + u_j) - log q(u_j | k)
  for (int64_t j = 0; j < draws; ++j) {
    if (!dequantizer) {
      torch::Tensor u = at::rand(levels.sizes(), gen, levels.scalar_type()).to(levels.device());
      weights.push_back(log_density(u).to(torch::kFloat64));
    } else {
      torch::Tensor eps = at::randn(levels.sizes(), gen, levels.scalar_type()).to(levels.device());
      auto [u, log_q] = dequantizer->sample(levels, eps);
      weights.push_back(log_density(u).to(torch::kFloat64) - log_q.to(torch::kFloat64));
    }
  }
  // log mean_j exp(w_j), stably
  return torch::logsumexp(torch::stack(weights, 1), 1) - std::log(double(draws));
}

}  // namespace gm::flow
