#include "genmodels/vae/ladder.h"

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/nn/precision.h"

namespace gm::vae {

namespace F = torch::nn::functional;

namespace {

// NVAE's soft_clamp5 (Vahdat & Kautz 2020, code `utils.soft_clamp5`): 5 tanh(x / 5) keeps means
// and log-scales in (-5, 5), so sigma >= e^-5 and the KL stays finite early in training.
torch::Tensor soft_clamp(const torch::Tensor& x) { return 5.0 * torch::tanh(x / 5.0); }

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).padding(k / 2));
}

// Scales a convolution's weight in place (VDVAE's initialisation of residual branch outputs).
void scale_weight(torch::nn::Conv2d& c, double s) {
  torch::NoGradGuard g;
  c->weight.mul_(s);
}

// log N(z; mu, exp(logvar)) summed over all but the batch dimension.
torch::Tensor log_normal(const torch::Tensor& z, const torch::Tensor& mu,
                         const torch::Tensor& logvar) {
  return gaussian_log_prob(z, mu, logvar).flatten(1).sum(1);
}
}  // namespace

torch::Tensor kl_gaussians(const torch::Tensor& mu_q, const torch::Tensor& logvar_q,
                           const torch::Tensor& mu_p, const torch::Tensor& logvar_p) {
  return 0.5 * (logvar_p - logvar_q +
                (torch::exp(logvar_q) + (mu_q - mu_p).square()) * torch::exp(-logvar_p) - 1.0);
}

namespace detail {

BottleneckImpl::BottleneckImpl(int64_t in, int64_t mid, int64_t out, bool residual_)
    : c1(register_module("c1", conv(in, mid, 1))),
      c2(register_module("c2", conv(mid, mid, 3))),
      c3(register_module("c3", conv(mid, out, 1))),
      residual(residual_) {
  if (residual && in != out) throw Error("ladder vae: a residual block needs in == out channels");
}

torch::Tensor BottleneckImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = c1(F::silu(x));
  h = c2(F::silu(h));
  h = c3(F::silu(h));
  return residual ? x + h : h;
}

LadderCellImpl::LadderCellImpl(int64_t channels, int64_t mid, int64_t latent, double res_scale)
    : prior(register_module("prior", Bottleneck(channels, mid, 2 * latent + channels, false))),
      posterior(register_module("posterior", Bottleneck(2 * channels, mid, 2 * latent, false))),
      z_proj(register_module("z_proj", conv(latent, channels, 1))),
      res(register_module("res", Bottleneck(channels, mid, channels, true))) {
  // VDVAE (DecBlock.__init__): the prior starts at N(0, I) plus its bias and adds nothing to the
  // state; the two residual contributions to the state are scaled by 1/sqrt(number of cells).
  scale_weight(prior->c3, 0.0);
  scale_weight(z_proj, res_scale);
  scale_weight(res->c3, res_scale);
}

}  // namespace detail

LadderVaeImpl::LadderVaeImpl(LadderOptions o) : options_(std::move(o)) {
  const auto& s = options_.shape;
  if (s.size() != 3) throw Error("ladder vae: needs images {C, H, W}");
  const int64_t R = static_cast<int64_t>(options_.layers_per_level.size());
  if (R < 1) throw Error("ladder vae: layers_per_level needs at least one resolution");
  int64_t total = 0;
  for (int64_t l : options_.layers_per_level) {
    if (l < 0) throw Error("ladder vae: layers_per_level entries must be >= 0");
    total += l;
  }
  if (total < 1) throw Error("ladder vae: needs at least one stochastic layer");
  const int64_t f = int64_t{1} << R;
  if (s[1] % f != 0 || s[2] % f != 0)
    throw Error("ladder vae: image height and width must be divisible by 2^" + std::to_string(R) +
                " = " + std::to_string(f) + " for " + std::to_string(R) + " resolutions, got " +
                std::to_string(s[1]) + "x" + std::to_string(s[2]));
  if (options_.channels < 1 || options_.latent_channels < 1 || options_.encoder_blocks < 1)
    throw Error("ladder vae: channels, latent_channels and encoder_blocks must be >= 1");
  if (options_.num_classes < 0) throw Error("ladder vae: num_classes must be >= 0");
  params_per_dim_ = options_.likelihood == Likelihood::Bernoulli ? 1 : 2;
  const int64_t C = s[0], c = options_.channels, zc = options_.latent_channels;
  const int64_t mid = options_.bottleneck > 0 ? options_.bottleneck : std::max<int64_t>(1, c / 2);

  // Bottom-up: stride-2 stem, then residual blocks per resolution (finest first).
  stem_ = register_module(
      "stem", torch::nn::Conv2d(torch::nn::Conv2dOptions(C, c, 4).stride(2).padding(1)));
  torch::nn::ModuleList enc;
  const double enc_scale = 1.0 / std::sqrt(static_cast<double>(R * options_.encoder_blocks));
  for (int64_t r = 0; r < R; ++r) {
    torch::nn::Sequential blocks;
    for (int64_t b = 0; b < options_.encoder_blocks; ++b) {
      detail::Bottleneck block(c, mid, c, true);
      scale_weight(block->c3, enc_scale);
      blocks->push_back(block);
    }
    encoder_.push_back(blocks);
    enc->push_back(blocks);
  }
  register_module("encoder", enc);

  // Top-down: learned start state at the coarsest resolution, then the cells, top first.
  h_top_ = register_parameter("h_top", torch::zeros({c, s[1] / f, s[2] / f}));
  torch::nn::ModuleList cells;
  const double res_scale = 1.0 / std::sqrt(static_cast<double>(total));
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < options_.layers_per_level[i]; ++j) {
      detail::LadderCell cell(c, mid, zc, res_scale);
      cells_.push_back(cell);
      cells->push_back(cell);
      level_of_cell_.push_back(R - 1 - i);
    }
  register_module("cells", cells);
  if (options_.num_classes > 0)
    class_emb_ = register_module("class_emb", torch::nn::Embedding(options_.num_classes, 2 * c));
  out_ = register_module("out", gm::nn::UpConv2x(c, params_per_dim_ * C));
}

int64_t LadderVaeImpl::dims() const {
  return options_.shape[0] * options_.shape[1] * options_.shape[2];
}

std::pair<int64_t, int64_t> LadderVaeImpl::latent_size(int64_t layer) const {
  const int64_t f = int64_t{2} << level_of_cell_.at(layer);
  return {options_.shape[1] / f, options_.shape[2] / f};
}

// The label embedding, N x 2c (first half: bottom-up input, second: top-down start), or undefined.
torch::Tensor LadderVaeImpl::class_embedding(const torch::Tensor& y, int64_t rows) {
  if (options_.num_classes == 0) return {};
  if (!y.defined())
    throw Error("ladder vae: class-conditional (num_classes = " +
                std::to_string(options_.num_classes) + ") needs labels y");
  if (y.dim() != 1 || y.size(0) != rows)
    throw Error("ladder vae: labels y must be a vector of " + std::to_string(rows) + " labels");
  return class_emb_(y.to(torch::kLong));
}

std::vector<torch::Tensor> LadderVaeImpl::bottom_up(const torch::Tensor& x,
                                                    const torch::Tensor& y) {
  gm::nn::AutocastScope autocast(options_.bf16 ? gm::nn::Precision::Bf16 : gm::nn::Precision::Fp32);
  const int64_t c = options_.channels;
  torch::Tensor h = stem_(x);
  torch::Tensor e = class_embedding(y, x.size(0));
  if (e.defined()) h = h + e.narrow(1, 0, c).view({-1, c, 1, 1}).to(h.scalar_type());
  std::vector<torch::Tensor> features;
  for (size_t r = 0; r < encoder_.size(); ++r) {
    if (r > 0) h = F::avg_pool2d(h, F::AvgPool2dFuncOptions(2));
    h = encoder_[r]->forward(h);
    features.push_back(h);
  }
  return features;
}

LadderVaeImpl::Pass LadderVaeImpl::top_down(int64_t n, const std::vector<torch::Tensor>* features,
                                            const torch::Tensor& y,
                                            const std::vector<torch::Tensor>& eps, bool use_mean,
                                            at::Generator* gen, double temperature) {
  const int64_t c = options_.channels, zc = options_.latent_channels;
  const auto dtype = h_top_.scalar_type();  // of the latent parameters: fp32 (or fp64) under bf16
  if (!eps.empty() && static_cast<int64_t>(eps.size()) != num_layers())
    throw Error("ladder vae: eps needs one tensor per stochastic layer (" +
                std::to_string(num_layers()) + ")");
  Pass pass;
  torch::Tensor h;
  {
    gm::nn::AutocastScope autocast(options_.bf16 ? gm::nn::Precision::Bf16
                                                 : gm::nn::Precision::Fp32);
    h = h_top_.unsqueeze(0).expand({n, -1, -1, -1});
    torch::Tensor e = class_embedding(y, n);
    if (e.defined()) h = h + e.narrow(1, c, c).view({-1, c, 1, 1});
    int64_t level = static_cast<int64_t>(options_.layers_per_level.size()) - 1;
    auto up = [&](int64_t to) {
      for (; level > to; --level)
        h = F::interpolate(h, F::InterpolateFuncOptions()
                                  .scale_factor(std::vector<double>{2.0, 2.0})
                                  .mode(torch::kNearest));
    };
    for (int64_t i = 0; i < num_layers(); ++i) {
      up(level_of_cell_[i]);
      auto& cell = cells_[i];
      Layer layer;
      // Posterior relative to the prior (NVAE Sec. 3.2, residual Normal), from the state before the
      // prior's feature is added and the bottom-up features of this resolution (VDVAE
      // DecBlock.sample).
      torch::Tensor dq;
      if (features)
        dq = cell->posterior(torch::cat({h, (*features)[level].to(h.scalar_type())}, 1)).to(dtype);
      // Prior p(z_l | z_>l) and the feature it adds to the state.
      torch::Tensor pp = cell->prior(h);
      h = h + pp.narrow(1, 2 * zc, c);
      pp = pp.narrow(1, 0, 2 * zc).to(dtype);
      torch::Tensor mu_p = soft_clamp(pp.narrow(1, 0, zc));
      torch::Tensor log_sigma_p = soft_clamp(pp.narrow(1, zc, zc));
      layer.mu_p = mu_p;
      layer.logvar_p = 2.0 * log_sigma_p;
      torch::Tensor mu = mu_p, log_sigma = log_sigma_p;
      if (features) {
        mu = soft_clamp(mu_p + dq.narrow(1, 0, zc));
        log_sigma = soft_clamp(log_sigma_p + dq.narrow(1, zc, zc));
        layer.mu_q = mu;
        layer.logvar_q = 2.0 * log_sigma;
      } else {
        log_sigma = log_sigma + std::log(std::max(temperature, 1e-30));
      }
      // Reparameterised draw z_l = mu + sigma eps (Kingma & Welling 2014, Sec. 2.4).
      if (use_mean || (!features && temperature == 0.0)) {
        layer.z = mu;
      } else {
        torch::Tensor e_l = !eps.empty() ? eps[i].to(mu.options())
                            : gen        ? at::randn(mu.sizes(), *gen, mu.options())
                                         : torch::randn_like(mu);
        layer.z = mu + torch::exp(log_sigma) * e_l;
      }
      // Merge z_l into the state through a residual block (VDVAE DecBlock.forward).
      h = cell->res(h + cell->z_proj(layer.z));
      pass.layers.push_back(std::move(layer));
    }
    up(0);
  }
  // Output layer in fp32: the likelihood's parameters at full resolution.
  pass.params = out_(F::silu(h.to(dtype)));
  return pass;
}

LadderVaeImpl::Pass LadderVaeImpl::posterior_pass(const torch::Tensor& x, const torch::Tensor& y,
                                                  const std::vector<torch::Tensor>& eps,
                                                  bool use_mean) {
  const std::vector<torch::Tensor> features = bottom_up(x, y);
  return top_down(x.size(0), &features, y, eps, use_mean, nullptr, 1.0);
}

LadderVaeImpl::Pass LadderVaeImpl::prior_pass(int64_t n, at::Generator& gen, const torch::Tensor& y,
                                              double temperature) {
  return top_down(n, nullptr, y, {}, false, &gen, temperature);
}

torch::Tensor LadderVaeImpl::log_likelihood(const torch::Tensor& x,
                                            const torch::Tensor& params) const {
  const int64_t n = x.size(0);
  torch::Tensor lp;
  if (options_.likelihood == Likelihood::Bernoulli) {
    lp = -F::binary_cross_entropy_with_logits(
        params, x, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
  } else {
    auto parts = params.chunk(2, 1);
    lp = options_.likelihood == Likelihood::Logistic
             ? discretized_logistic_log_prob(x, parts[0], parts[1])
             : gaussian_log_prob(x, parts[0], parts[1]);
  }
  return lp.reshape({n, -1}).sum(1);
}

torch::Tensor LadderVaeImpl::mean(const torch::Tensor& params) const {
  if (options_.likelihood == Likelihood::Bernoulli) return 2.0 * torch::sigmoid(params) - 1.0;
  torch::Tensor m = params.chunk(2, 1)[0];
  return options_.likelihood == Likelihood::Logistic ? m.clamp(-1.0, 1.0) : m;
}

LadderVaeImpl::Terms LadderVaeImpl::elbo_terms(const torch::Tensor& x, const torch::Tensor& y) {
  Pass pass = posterior_pass(x, y);
  Terms t;
  t.log_px_z = log_likelihood(x, pass.params);
  t.kl = torch::zeros_like(t.log_px_z);
  for (const Layer& l : pass.layers) {
    t.kl_layers.push_back(kl_gaussians(l.mu_q, l.logvar_q, l.mu_p, l.logvar_p).flatten(1).sum(1));
    t.kl = t.kl + t.kl_layers.back();
  }
  return t;
}

torch::Tensor LadderVaeImpl::log_weights(const torch::Tensor& x, int64_t k, int64_t max_batch,
                                         const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  const int64_t n = x.size(0);
  const std::vector<torch::Tensor> features = bottom_up(x, y);
  torch::Tensor out = torch::empty({n, k}, x.options());
  const int64_t per = std::max<int64_t>(1, max_batch / std::max<int64_t>(n, 1));
  for (int64_t j0 = 0; j0 < k; j0 += per) {
    // kk draws for every example, rows ordered draw-major (row j * n + i).
    const int64_t kk = std::min(per, k - j0);
    std::vector<torch::Tensor> fr;
    for (const auto& f : features) fr.push_back(f.repeat({kk, 1, 1, 1}));
    torch::Tensor yr = y.defined() ? y.repeat({kk}) : y;
    Pass pass = top_down(kk * n, &fr, yr, {}, false, nullptr, 1.0);
    torch::Tensor lw = log_likelihood(x.repeat({kk, 1, 1, 1}), pass.params);
    for (const Layer& l : pass.layers)
      lw = lw + log_normal(l.z, l.mu_p, l.logvar_p) - log_normal(l.z, l.mu_q, l.logvar_q);
    out.narrow(1, j0, kk).copy_(lw.view({kk, n}).t());
  }
  return out;
}

torch::Tensor LadderVaeImpl::sample_params(int64_t n, at::Generator& gen, const torch::Tensor& y,
                                           double temperature) {
  return prior_pass(n, gen, y, temperature).params;
}

torch::Tensor LadderVaeImpl::reconstruct(const torch::Tensor& x, const torch::Tensor& y) {
  return posterior_pass(x, y, {}, /*use_mean=*/true).params;
}

}  // namespace gm::vae
