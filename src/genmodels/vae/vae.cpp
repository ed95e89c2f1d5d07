#include "genmodels/vae/vae.h"

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/nn/bf16_body.h"
#include "genmodels/nn/layout.h"
#include "genmodels/nn/linear.h"
#include "genmodels/nn/precision.h"
#include "genmodels/nn/upconv.h"

namespace gm::vae {

namespace nn = torch::nn;

namespace {
constexpr double kLog2Pi = 1.8378770664093453;  // log(2 pi)
constexpr double kHalfBin = 1.0 / 255.0;        // half of a pixel bin on [-1, 1]
constexpr double kMinLogScale = -7.0;           // as PixelCNN++: keeps bins resolvable
constexpr int64_t kMaxDecodeRows = 4096;        // decoder rows per batch in log_weights

// Runs layers [from, to) of `seq` on h.
torch::Tensor run_layers(nn::Sequential& seq, torch::Tensor h, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i)
    h = (seq->begin() + static_cast<std::ptrdiff_t>(i))->forward(h);
  return h;
}

// A class embedding initialised as the extra input columns of the layer it joins (fan-in
// `fan_in`, LibTorch's Linear init U(-1/sqrt(fan_in), 1/sqrt(fan_in))): adding E[y] to that
// layer's output is then exactly concatenating one-hot y to its input (Kingma et al. 2014, M2).
nn::Embedding class_embedding(int64_t classes, int64_t width, int64_t fan_in) {
  nn::Embedding e(classes, width);
  torch::NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  e->weight.uniform_(-bound, bound);
  return e;
}
}  // namespace

Likelihood parse_likelihood(const std::string& name) {
  if (name == "bernoulli") return Likelihood::Bernoulli;
  if (name == "logistic") return Likelihood::Logistic;
  if (name == "gaussian") return Likelihood::Gaussian;
  throw Error("model.likelihood: unknown '" + name + "' (bernoulli, logistic or gaussian)");
}

torch::Tensor kl_standard_normal(const torch::Tensor& mu, const torch::Tensor& logvar) {
  return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(-1);
}

torch::Tensor kl_diagonal_gaussians(const torch::Tensor& mu_q, const torch::Tensor& logvar_q,
                                    const torch::Tensor& mu_p, const torch::Tensor& logvar_p) {
  return 0.5 *
         (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).square()) * (-logvar_p).exp() - 1.0)
             .sum(-1);
}

torch::Tensor discretized_logistic_log_prob(const torch::Tensor& x, const torch::Tensor& mean,
                                            const torch::Tensor& log_scale_in) {
  torch::Tensor log_scale = log_scale_in.clamp_min(kMinLogScale);
  torch::Tensor centred = x - mean;
  torch::Tensor inv_s = torch::exp(-log_scale);
  torch::Tensor plus_in = inv_s * (centred + kHalfBin);
  torch::Tensor min_in = inv_s * (centred - kHalfBin);
  torch::Tensor log_cdf_plus = plus_in - torch::nn::functional::softplus(plus_in);  // x = -1 bin
  torch::Tensor log_one_minus_cdf_min = -torch::nn::functional::softplus(min_in);   // x = +1 bin
  torch::Tensor cdf_delta = torch::sigmoid(plus_in) - torch::sigmoid(min_in);
  // Where the bin mass underflows in float, use the density at the bin centre times its width.
  torch::Tensor mid_in = inv_s * centred;
  torch::Tensor log_pdf_mid = mid_in - log_scale - 2.0 * torch::nn::functional::softplus(mid_in);
  torch::Tensor interior = torch::where(cdf_delta > 1e-5, torch::log(cdf_delta.clamp_min(1e-12)),
                                        log_pdf_mid + std::log(2.0 * kHalfBin));
  return torch::where(x < -0.999, log_cdf_plus,
                      torch::where(x > 0.999, log_one_minus_cdf_min, interior));
}

Prior parse_prior(const std::string& name) {
  if (name == "standard") return Prior::Standard;
  if (name == "vamp") return Prior::Vamp;
  if (name == "learned") return Prior::Learned;
  throw Error("model.prior: unknown '" + name + "' (standard, vamp or learned)");
}

torch::Tensor gaussian_log_prob(const torch::Tensor& x, const torch::Tensor& mean,
                                const torch::Tensor& logvar) {
  return -0.5 * (kLog2Pi + logvar + (x - mean).square() * torch::exp(-logvar));
}

torch::Tensor mixture_log_prob(const torch::Tensor& z, const torch::Tensor& mu,
                               const torch::Tensor& logvar) {
  const bool shared = mu.dim() == 2;
  const int64_t n = z.size(0), K = mu.size(-2), L = mu.size(-1);
  // Rows in chunks so that the N x K x L intermediates stay near 4M values.
  const int64_t rows = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(1, K * L));
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < n; i += rows) {
    const int64_t b = std::min(rows, n - i);
    torch::Tensor m = shared ? mu.unsqueeze(0) : mu.narrow(0, i, b);
    torch::Tensor lv = shared ? logvar.unsqueeze(0) : logvar.narrow(0, i, b);
    // log N(z; mu_k, var_k) summed over L, for every component: b x K.
    torch::Tensor comp = gaussian_log_prob(z.narrow(0, i, b).unsqueeze(1), m, lv).sum(-1);
    // Tomczak & Welling 2018, eq. 9: log (1/K sum_k q(z|u_k)).
    out.push_back(torch::logsumexp(comp, 1) - std::log(static_cast<double>(K)));
  }
  return out.size() == 1 ? out[0] : torch::cat(out);
}

VaeImpl::VaeImpl(VaeOptions o) : options_(std::move(o)) {
  const auto& s = options_.shape;
  if (s.empty()) throw Error("vae: empty data shape");
  if (options_.latent < 1) throw Error("model.latent must be >= 1");
  if (options_.num_classes < 0) throw Error("vae: num_classes must be >= 0");
  const bool image = s.size() == 3;
  if (!image && options_.likelihood != Likelihood::Gaussian)
    throw Error(
        "vae: vector data needs model.likelihood=gaussian (bernoulli and logistic model "
        "8-bit images)");
  params_per_dim_ = options_.likelihood == Likelihood::Bernoulli ? 1 : 2;
  const int64_t D = dims(), L = options_.latent, H = options_.hidden;
  if (options_.arch == "mlp") {
    encoder_ = nn::Sequential(nn::Flatten(), gm::nn::Linear(D, H), nn::SiLU(), gm::nn::Linear(H, H),
                              nn::SiLU(), gm::nn::Linear(H, 2 * L));
    decoder_ = nn::Sequential(gm::nn::Linear(L, H), nn::SiLU(), gm::nn::Linear(H, H), nn::SiLU(),
                              gm::nn::Linear(H, params_per_dim_ * D));
    encoder_label_at_ = 1;  // Flatten, Linear(D, H): the label joins the input layer
  } else if (options_.arch == "conv") {
    if (!image || s[1] % 4 != 0 || s[2] % 4 != 0)
      throw Error(
          "model.arch=conv needs images with height and width divisible by 4; use "
          "model.arch=mlp for this data");
    const int64_t C = s[0], c = options_.channels, h4 = s[1] / 4, w4 = s[2] / 4;
    const int64_t flat = 2 * c * h4 * w4;
    auto conv = [](int64_t i, int64_t o) {
      return nn::Conv2d(nn::Conv2dOptions(i, o, 4).stride(2).padding(1));
    };
    // ConvTranspose2d(k 4, s 2, p 1) computed on oneDNN (nn/upconv.h): same parameters.
    auto deconv = [](int64_t i, int64_t o) { return gm::nn::UpConv2x(i, o); };
    encoder_ = nn::Sequential(conv(C, c), nn::SiLU(), conv(c, 2 * c), nn::SiLU(), nn::Flatten(),
                              gm::nn::Linear(flat, H), nn::SiLU(), gm::nn::Linear(H, 2 * L));
    decoder_ =
        nn::Sequential(gm::nn::Linear(L, H), nn::SiLU(), gm::nn::Linear(H, flat), nn::SiLU(),
                       nn::Unflatten(nn::UnflattenOptions(1, std::vector<int64_t>{2 * c, h4, w4})),
                       deconv(2 * c, c), nn::SiLU(), deconv(c, params_per_dim_ * C));
    encoder_label_at_ = 5;  // conv, SiLU, conv, SiLU, Flatten, Linear(flat, H): the FC layer
    if (options_.channels_last) {
      layout_probe_ =
          nn::Conv2d(encoder_->ptr<nn::Conv2dImpl>(2));  // C_in = c > 1: its layout is unambiguous
      gm::nn::set_conv_layout(*encoder_, true);          // its only 4-D parameters: the two convs
      for (size_t i = 0; i < decoder_->size(); ++i)
        if (auto* up = decoder_->ptr(i)->as<gm::nn::UpConv2xImpl>()) up->channels_last = true;
    }
  } else {
    throw Error("model.arch: unknown '" + options_.arch + "' (mlp or conv)");
  }
  register_module("encoder", encoder_);
  register_module("decoder", decoder_);
  if (conditional()) {
    const int64_t enc_fan_in =
        options_.arch == "mlp" ? D : 2 * options_.channels * (s[1] / 4) * (s[2] / 4);
    encoder_class_ =
        register_module("encoder_class", class_embedding(options_.num_classes, H, enc_fan_in));
    decoder_class_ = register_module("decoder_class", class_embedding(options_.num_classes, H, L));
  }
  if (options_.prior == Prior::Vamp) {
    groups_ = conditional() ? options_.num_classes : 1;
    per_group_ = options_.pseudo_inputs / groups_;
    if (options_.pseudo_inputs < 1 || per_group_ < 1)
      throw Error("model.pseudo_inputs must be >= " + std::to_string(groups_) +
                  (conditional() ? " (one per class at least)" : "") + ", got " +
                  std::to_string(options_.pseudo_inputs));
    // Pseudo-inputs start as small random values around the middle of the encoder's input range
    // (0 for [-1, 1] images and vectors, 0.5 for binarised images); Tomczak & Welling's also
    // start as small random values. They are learned with everything else.
    std::vector<int64_t> ps = {groups_ * per_group_};
    ps.insert(ps.end(), s.begin(), s.end());
    const double middle = options_.likelihood == Likelihood::Bernoulli ? 0.5 : 0.0;
    pseudo_inputs_ = register_parameter("pseudo_inputs", middle + 0.01 * torch::randn(ps));
  }
  if (options_.prior == Prior::Learned) {
    // Starts as N(0, I) for every class: the standard prior, which training then moves.
    groups_ = conditional() ? options_.num_classes : 1;
    prior_mu_ = register_parameter("prior_mu", torch::zeros({groups_, options_.latent}));
    prior_logvar_ = register_parameter("prior_logvar", torch::zeros({groups_, options_.latent}));
  }
}

std::pair<torch::Tensor, torch::Tensor> VaeImpl::learned_prior(const torch::Tensor& y,
                                                               int64_t n) const {
  if (!conditional()) return {prior_mu_.expand({n, -1}), prior_logvar_.expand({n, -1})};
  return {prior_mu_.index_select(0, y), prior_logvar_.index_select(0, y)};
}

int64_t VaeImpl::dims() const {
  int64_t d = 1;
  for (int64_t v : options_.shape) d *= v;
  return d;
}

std::pair<torch::Tensor, torch::Tensor> VaeImpl::encode(const torch::Tensor& x,
                                                        const torch::Tensor& y) {
  torch::Tensor h;
  const bool nhwc = static_cast<bool>(layout_probe_);
  // A checkpoint load may have replaced the weights with NCHW tensors.
  if (nhwc && !gm::nn::is_channels_last(layout_probe_->weight))
    gm::nn::set_conv_layout(*encoder_, true);
  const torch::Tensor in = nhwc ? gm::nn::strictly_channels_last(x) : x;
  {
    gm::nn::AutocastScope autocast(options_.bf16 ? gm::nn::Precision::Bf16
                                                 : gm::nn::Precision::Fp32);
    if (conditional()) {
      if (!y.defined()) throw Error("vae: this model is class-conditional; encode needs labels");
      h = run_layers(encoder_, in, 0, encoder_label_at_ + 1) + encoder_class_->forward(y);
      h = run_layers(encoder_, h, encoder_label_at_ + 1, encoder_->size());
    } else {
      h = encoder_->forward(in);
    }
    h = h.to(torch::kFloat32);
  }
  auto parts = h.chunk(2, 1);
  return {parts[0], parts[1]};
}

torch::Tensor VaeImpl::decode(const torch::Tensor& z, const torch::Tensor& y) {
  torch::Tensor p;
  if (!conditional()) {
    p = options_.bf16 ? gm::nn::forward_bf16_body(decoder_, z) : decoder_->forward(z);
  } else {
    if (!y.defined()) throw Error("vae: this model is class-conditional; decode needs labels");
    // As forward_bf16_body: the body under autocast (a no-op for fp32), the output layer in fp32.
    const size_t n = decoder_->size();
    {
      gm::nn::AutocastScope autocast(options_.bf16 ? gm::nn::Precision::Bf16
                                                   : gm::nn::Precision::Fp32);
      p = run_layers(decoder_, z, 0, 1) + decoder_class_->forward(y);
      p = run_layers(decoder_, p, 1, n - 1);
    }
    p = run_layers(decoder_, p.to(torch::kFloat32), n - 1, n);
  }
  if (options_.arch == "mlp" && options_.shape.size() == 3) {
    const auto& s = options_.shape;
    p = p.view({z.size(0), params_per_dim_ * s[0], s[1], s[2]});
  }
  return layout_probe_ ? p.contiguous() : p;  // channels-last upsamplers give NHWC
}

torch::Tensor VaeImpl::log_likelihood(const torch::Tensor& x, const torch::Tensor& params) const {
  const int64_t n = x.size(0);
  torch::Tensor lp;
  if (options_.likelihood == Likelihood::Bernoulli) {
    // log sigmoid(l) for b = 1, log sigmoid(-l) for b = 0: -BCE with logits.
    lp = -torch::nn::functional::binary_cross_entropy_with_logits(
        params, x,
        torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
  } else {
    auto parts = params.chunk(2, 1);
    lp = options_.likelihood == Likelihood::Logistic
             ? discretized_logistic_log_prob(x, parts[0], parts[1])
             : gaussian_log_prob(x, parts[0], parts[1]);
  }
  return lp.reshape({n, -1}).sum(1);
}

torch::Tensor VaeImpl::mean(const torch::Tensor& params) const {
  if (options_.likelihood == Likelihood::Bernoulli) return 2.0 * torch::sigmoid(params) - 1.0;
  torch::Tensor m = params.chunk(2, 1)[0];
  return options_.likelihood == Likelihood::Logistic ? m.clamp(-1.0, 1.0) : m;
}

std::pair<torch::Tensor, torch::Tensor> VaeImpl::prior_components() {
  if (options_.prior != Prior::Vamp) throw Error("vae: prior components need model.prior=vamp");
  torch::Tensor labels;
  if (conditional()) labels = torch::arange(groups_, torch::kInt64).repeat_interleave(per_group_);
  auto [mu, logvar] = encode(pseudo_inputs_, labels);
  const int64_t L = options_.latent;
  return {mu.view({groups_, per_group_, L}), logvar.view({groups_, per_group_, L})};
}

torch::Tensor VaeImpl::log_prior_from(
    const torch::Tensor& z, const torch::Tensor& y,
    const std::pair<torch::Tensor, torch::Tensor>& components) const {
  if (options_.prior == Prior::Standard)
    return gaussian_log_prob(z, torch::zeros_like(z), torch::zeros_like(z)).sum(-1);
  if (options_.prior == Prior::Learned) {
    auto [m, lv] = learned_prior(y, z.size(0));
    return gaussian_log_prob(z, m, lv).sum(-1);
  }
  const auto& [mu, logvar] = components;
  if (!conditional()) return mixture_log_prob(z, mu[0], logvar[0]);
  // p(z|y): the mixture of the label's own pseudo-inputs.
  return mixture_log_prob(z, mu.index_select(0, y), logvar.index_select(0, y));
}

torch::Tensor VaeImpl::log_prior(const torch::Tensor& z, const torch::Tensor& y) {
  if (conditional() && !y.defined())
    throw Error("vae: this model is class-conditional; give labels");
  return log_prior_from(z, y,
                        options_.prior == Prior::Vamp ? prior_components()
                                                      : std::pair<torch::Tensor, torch::Tensor>{});
}

torch::Tensor VaeImpl::sample_prior(int64_t n, at::Generator& gen, const torch::Tensor& y) {
  const int64_t L = options_.latent;
  torch::Tensor eps = at::randn({n, L}, gen, torch::kFloat32);
  if (options_.prior == Prior::Standard) return eps;
  if (conditional() && !y.defined())
    throw Error("vae: this model is class-conditional; give labels");
  if (options_.prior == Prior::Learned) {
    auto [m, lv] = learned_prior(y, n);
    return m + torch::exp(0.5 * lv) * eps;
  }
  // VampPrior: a component chosen uniformly within the label's group, then z ~ q(z | u_k).
  auto [mu, logvar] = prior_components();
  torch::Tensor k = at::randint(per_group_, {n}, gen, torch::kInt64);
  if (conditional()) k = k + y.to(torch::kInt64) * per_group_;
  torch::Tensor m = mu.view({-1, L}).index_select(0, k);
  torch::Tensor lv = logvar.view({-1, L}).index_select(0, k);
  return m + torch::exp(0.5 * lv) * eps;
}

VaeImpl::Terms VaeImpl::elbo_terms(const torch::Tensor& x, const torch::Tensor& y) {
  auto [mu, logvar] = encode(x, y);
  torch::Tensor z = mu + torch::exp(0.5 * logvar) * torch::randn_like(mu);
  torch::Tensor log_px_z = log_likelihood(x, decode(z, y));
  if (options_.prior == Prior::Standard) return {log_px_z, kl_standard_normal(mu, logvar)};
  if (options_.prior == Prior::Learned) {
    auto [m, lv] = learned_prior(y, x.size(0));
    return {log_px_z, kl_diagonal_gaussians(mu, logvar, m, lv)};
  }
  // VampPrior: the KL to the mixture has no closed form; its one-sample Monte Carlo estimate
  // log q(z|x) - log p(z) at the same z (Tomczak & Welling 2018, with p(z) of eq. 9).
  torch::Tensor log_qz = gaussian_log_prob(z, mu, logvar).sum(-1);
  return {log_px_z, log_qz - log_prior(z, y)};
}

torch::Tensor VaeImpl::log_weights(const torch::Tensor& x, int64_t k, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  const int64_t n = x.size(0), L = options_.latent;
  auto [mu, logvar] = encode(x, y);
  const std::pair<torch::Tensor, torch::Tensor> components =
      options_.prior == Prior::Vamp ? prior_components()
                                    : std::pair<torch::Tensor, torch::Tensor>{};
  torch::Tensor std = torch::exp(0.5 * logvar);
  torch::Tensor out = torch::empty({n, k}, torch::kFloat32);
  const int64_t per = std::max<int64_t>(1, kMaxDecodeRows / std::max<int64_t>(n, 1));
  for (int64_t j0 = 0; j0 < k; j0 += per) {
    const int64_t kk = std::min(per, k - j0);
    torch::Tensor eps = torch::randn({kk, n, L});
    torch::Tensor z = mu.unsqueeze(0) + std.unsqueeze(0) * eps;  // kk x n x L
    torch::Tensor zf = z.reshape({kk * n, L});
    std::vector<int64_t> rep(x.dim() + 1, 1);
    rep[0] = kk;
    torch::Tensor xr = x.unsqueeze(0).repeat(rep).reshape([&] {
      std::vector<int64_t> s = {kk * n};
      for (int64_t d = 1; d < x.dim(); ++d) s.push_back(x.size(d));
      return s;
    }());
    // Row j * n + i of zf belongs to example i: its label is y[i].
    torch::Tensor yr = conditional() ? y.repeat({kk}) : torch::Tensor();
    torch::Tensor log_px_z = log_likelihood(xr, decode(zf, yr)).view({kk, n});
    torch::Tensor log_pz = log_prior_from(zf, yr, components).view({kk, n});
    torch::Tensor log_qz = (-0.5 * (kLog2Pi + logvar.unsqueeze(0) + eps.square())).sum(-1);
    out.narrow(1, j0, kk).copy_((log_px_z + log_pz - log_qz).t());
  }
  return out;
}

}  // namespace gm::vae
