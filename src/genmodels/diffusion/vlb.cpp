// The diffusion variational bound (see vlb.h for the papers and conventions).
#include "genmodels/diffusion/vlb.h"

#include <cmath>

#include "genmodels/core/error.h"

namespace gm::diffusion {
namespace {

// Per-row values (float64 N) as N x 1 x ... in x's dtype and device.
torch::Tensor rows_like(const torch::Tensor& v, const torch::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  return v.to(x.device(), x.scalar_type()).view(shape);
}

// abar at index t and at t - 1 (1 at t = 0), float64 N on the CPU.
std::pair<torch::Tensor, torch::Tensor> abar_pair(const NoiseSchedule& s, const torch::Tensor& t) {
  const torch::Tensor tc = t.to(torch::kCPU, torch::kLong);
  if (tc.numel() > 0 && (tc.min().item<int64_t>() < 0 || tc.max().item<int64_t>() >= s.num_steps()))
    throw Error("vlb: timesteps outside [0, " + std::to_string(s.num_steps() - 1) + "]");
  const torch::Tensor ab = s.alphas_cumprod.index_select(0, tc);
  const torch::Tensor prev = torch::where(
      tc > 0, s.alphas_cumprod.index_select(0, (tc - 1).clamp_min(0)), torch::ones_like(ab));
  return {ab, prev};
}

torch::Tensor mean_flat_bits(const torch::Tensor& v) {
  return v.reshape({v.size(0), -1}).mean(1).to(torch::kDouble) / std::log(2.0);
}

}  // namespace

VarianceKind parse_variance(const std::string& name) {
  if (name == "beta") return VarianceKind::Beta;
  if (name == "beta_tilde") return VarianceKind::BetaTilde;
  if (name == "learned") return VarianceKind::Learned;
  throw Error("unknown DDPM variance '" + name + "'; valid: beta, beta_tilde, learned");
}

torch::Tensor normal_kl(const torch::Tensor& mean1, const torch::Tensor& logvar1,
                        const torch::Tensor& mean2, const torch::Tensor& logvar2) {
  return 0.5 * (-1.0 + logvar2 - logvar1 + torch::exp(logvar1 - logvar2) +
                (mean1 - mean2).square() * torch::exp(-logvar2));
}

// Ho et al. 2020, eq. 13: the Gaussian's mass over [x - 1/255, x + 1/255], edges to +-inf.
torch::Tensor discretized_gaussian_log_likelihood(const torch::Tensor& x, const torch::Tensor& mean,
                                                  const torch::Tensor& log_scale) {
  const torch::Tensor centered = x - mean;
  const torch::Tensor inv_std = torch::exp(-log_scale);
  auto cdf = [](const torch::Tensor& v) { return 0.5 * torch::erfc(-v * M_SQRT1_2); };
  const torch::Tensor cdf_plus = cdf(inv_std * (centered + 1.0 / 255.0));
  const torch::Tensor cdf_min = cdf(inv_std * (centered - 1.0 / 255.0));
  const torch::Tensor log_cdf_plus = torch::log(cdf_plus.clamp_min(1e-12));
  const torch::Tensor log_one_minus_cdf_min = torch::log((1.0 - cdf_min).clamp_min(1e-12));
  const torch::Tensor log_delta = torch::log((cdf_plus - cdf_min).clamp_min(1e-12));
  return torch::where(x < -0.999, log_cdf_plus,
                      torch::where(x > 0.999, log_one_minus_cdf_min, log_delta));
}

// Ho et al. 2020, eq. 6-7 with beta_t = 1 - abar_t / abar_{t-1} (exact for any abar).
Posterior q_posterior(const NoiseSchedule& s, const torch::Tensor& x0, const torch::Tensor& x_t,
                      const torch::Tensor& t) {
  auto [ab, prev] = abar_pair(s, t);
  const torch::Tensor beta = 1.0 - ab / prev;
  const torch::Tensor c0 = torch::sqrt(prev) * beta / (1.0 - ab);
  const torch::Tensor ct = torch::sqrt(1.0 - beta) * (1.0 - prev) / (1.0 - ab);
  const torch::Tensor var = beta * (1.0 - prev) / (1.0 - ab);
  // beta-tilde at index 1, where index 0's is 0.
  const double ab0 = s.alpha_bar(0), ab1 = s.num_steps() > 1 ? s.alpha_bar(1) : ab0;
  const double var1 = s.num_steps() > 1 ? (1.0 - ab1 / ab0) * (1.0 - ab0) / (1.0 - ab1) : 1e-20;
  const torch::Tensor log_var =
      torch::log(torch::where(t.to(torch::kCPU) > 0, var, torch::full_like(var, var1)));
  Posterior p;
  p.mean = rows_like(c0, x0) * x0 + rows_like(ct, x0) * x_t;
  p.var = rows_like(var, x0);
  p.log_var = rows_like(log_var, x0);
  return p;
}

torch::Tensor p_log_variance(const NoiseSchedule& s, const torch::Tensor& x, const torch::Tensor& t,
                             VarianceKind kind, const torch::Tensor& v) {
  const torch::Tensor zero = torch::zeros_like(x);
  const torch::Tensor min_log = q_posterior(s, zero, zero, t).log_var;  // log beta-tilde, clipped
  auto [ab, prev] = abar_pair(s, t);
  const torch::Tensor log_beta = rows_like(torch::log(1.0 - ab / prev), x);
  switch (kind) {
    case VarianceKind::BetaTilde:
      return min_log;
    case VarianceKind::Beta: {
      const torch::Tensor first = rows_like((t.to(torch::kCPU) > 0).to(torch::kDouble), x);
      return first * log_beta + (1.0 - first) * min_log;
    }
    case VarianceKind::Learned:
      if (!v.defined())
        throw Error("p_log_variance: a learned variance needs the network's v fraction");
      return v * log_beta + (1.0 - v) * min_log;
  }
  return min_log;
}

torch::Tensor vlb_term(const NoiseSchedule& s, const torch::Tensor& x0, const torch::Tensor& x_t,
                       const torch::Tensor& t, const torch::Tensor& x0_pred,
                       const torch::Tensor& log_var) {
  const Posterior q = q_posterior(s, x0, x_t, t);
  const torch::Tensor p_mean = q_posterior(s, x0_pred, x_t, t).mean;
  const torch::Tensor kl = mean_flat_bits(normal_kl(q.mean, q.log_var, p_mean, log_var));
  const torch::Tensor nll =
      -mean_flat_bits(discretized_gaussian_log_likelihood(x0, p_mean, 0.5 * log_var));
  return torch::where(t.to(kl.device()) == 0, nll, kl);
}

torch::Tensor prior_term(const NoiseSchedule& s, const torch::Tensor& x0) {
  const double ab = s.alpha_bar(s.num_steps() - 1);
  const torch::Tensor zero = torch::zeros_like(x0);
  return mean_flat_bits(
      normal_kl(std::sqrt(ab) * x0, torch::full_like(x0, std::log(1.0 - ab)), zero, zero));
}

VlbResult vlb_bits_per_dim(const Denoiser& d, const torch::Tensor& x0, const Conditioning& cond,
                           VarianceKind variance, at::Generator& gen, bool clip_x0,
                           const std::function<void(int64_t, int64_t)>& progress) {
  torch::NoGradGuard no_grad;
  const NoiseSchedule& s = d.schedule();
  const int64_t n = x0.size(0), T = s.num_steps();
  const VarianceKind kind = d.learned_variance() ? VarianceKind::Learned : variance;
  if (kind == VarianceKind::Learned && !d.learned_variance())
    throw Error(
        "sample.variance = learned needs a model trained with diffusion.learn_sigma = true");
  VlbResult r;
  r.total = torch::zeros({n}, torch::kDouble);
  for (int64_t i = 0; i < T; ++i) {
    const torch::Tensor t = torch::full({n}, i, torch::kLong);
    const torch::Tensor noise = at::randn(x0.sizes(), gen, x0.scalar_type()).to(x0.device());
    const torch::Tensor x_t = q_sample(s, x0, t, noise);
    const auto p = d.predict(x_t, t.to(torch::kFloat).to(x0.device()), cond, clip_x0);
    const torch::Tensor term =
        vlb_term(s, x0, x_t, t, p.x0, p_log_variance(s, x0, t, kind, p.v)).cpu();
    if (i == 0) r.decoder = term;
    r.total += term;
    if (progress) progress(i + 1, T);
  }
  r.prior = prior_term(s, x0).cpu();
  r.total += r.prior;
  return r;
}

}  // namespace gm::diffusion
