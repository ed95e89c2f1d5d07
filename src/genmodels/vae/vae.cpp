#include "genmodels/vae/vae.h"

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/nn/bf16_body.h"
#include "genmodels/nn/linear.h"
#include "genmodels/nn/precision.h"
#include "genmodels/nn/upconv.h"

namespace gm::vae {

namespace nn = torch::nn;

namespace {
constexpr double kLog2Pi = 1.8378770664093453;  // log(2 pi)
constexpr double kHalfBin = 1.0 / 255.0;        // half of a pixel bin on [-1, 1]
constexpr double kMinLogScale = -7.0;           // as PixelCNN++: keeps bins resolvable
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

torch::Tensor gaussian_log_prob(const torch::Tensor& x, const torch::Tensor& mean,
                                const torch::Tensor& logvar) {
  return -0.5 * (kLog2Pi + logvar + (x - mean).square() * torch::exp(-logvar));
}

VaeImpl::VaeImpl(VaeOptions o) : options_(std::move(o)) {
  const auto& s = options_.shape;
  if (s.empty()) throw Error("vae: empty data shape");
  if (options_.latent < 1) throw Error("model.latent must be >= 1");
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
  } else {
    throw Error("model.arch: unknown '" + options_.arch + "' (mlp or conv)");
  }
  register_module("encoder", encoder_);
  register_module("decoder", decoder_);
}

int64_t VaeImpl::dims() const {
  int64_t d = 1;
  for (int64_t v : options_.shape) d *= v;
  return d;
}

std::pair<torch::Tensor, torch::Tensor> VaeImpl::encode(const torch::Tensor& x) {
  torch::Tensor h;
  {
    gm::nn::AutocastScope autocast(options_.bf16 ? gm::nn::Precision::Bf16
                                                 : gm::nn::Precision::Fp32);
    h = encoder_->forward(x).to(torch::kFloat32);
  }
  auto parts = h.chunk(2, 1);
  return {parts[0], parts[1]};
}

torch::Tensor VaeImpl::decode(const torch::Tensor& z) {
  torch::Tensor p = options_.bf16 ? gm::nn::forward_bf16_body(decoder_, z) : decoder_->forward(z);
  if (options_.arch == "mlp" && options_.shape.size() == 3) {
    const auto& s = options_.shape;
    p = p.view({z.size(0), params_per_dim_ * s[0], s[1], s[2]});
  }
  return p;
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

VaeImpl::Terms VaeImpl::elbo_terms(const torch::Tensor& x) {
  auto [mu, logvar] = encode(x);
  torch::Tensor z = mu + torch::exp(0.5 * logvar) * torch::randn_like(mu);
  return {log_likelihood(x, decode(z)), kl_standard_normal(mu, logvar)};
}

torch::Tensor VaeImpl::log_weights(const torch::Tensor& x, int64_t k, int64_t max_batch) {
  torch::NoGradGuard no_grad;
  const int64_t n = x.size(0), L = options_.latent;
  auto [mu, logvar] = encode(x);
  torch::Tensor std = torch::exp(0.5 * logvar);
  torch::Tensor out = torch::empty({n, k}, torch::kFloat32);
  const int64_t per = std::max<int64_t>(1, max_batch / std::max<int64_t>(n, 1));
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
    torch::Tensor log_px_z = log_likelihood(xr, decode(zf)).view({kk, n});
    torch::Tensor log_pz = gaussian_log_prob(z, torch::zeros_like(z), torch::zeros_like(z)).sum(-1);
    torch::Tensor log_qz = (-0.5 * (kLog2Pi + logvar.unsqueeze(0) + eps.square())).sum(-1);
    out.narrow(1, j0, kk).copy_((log_px_z + log_pz - log_qz).t());
  }
  return out;
}

}  // namespace gm::vae
