// Ancestral DDPM sampling (Ho et al. 2020 Alg. 2; respacing Nichol & Dhariwal 2021 Sec. 4).
#include "genmodels/sampling/ddpm.h"

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/sampling/timesteps.h"

namespace gm::sampling {

DdpmVariance ddpm_variance(const std::string& name, bool learned) {
  if (name == "auto") return learned ? DdpmVariance::Learned : DdpmVariance::BetaTilde;
  return diffusion::parse_variance(name);
}

// Ho et al. 2020 Alg. 2, written with the posterior q(x_{t-1} | x_t, x0) of eq. 6-7 so that the
// step works over a respaced subsequence: beta_t = 1 - abar_t / abar_prev (Nichol & Dhariwal Sec.
// 4).
torch::Tensor sample_ddpm(const diffusion::Denoiser& d, torch::Tensor x_T,
                          const std::vector<int64_t>& timesteps, DdpmVariance var,
                          const diffusion::Conditioning& cond, const Noise& noise,
                          const std::function<void(int64_t, int64_t)>& callback, bool clip_x0) {
  torch::NoGradGuard no_grad;
  const auto& sched = d.schedule();
  check_timesteps(timesteps, sched.num_steps(), "sample_ddpm");
  if (!x_T.defined() || x_T.dim() < 1) throw Error("sample_ddpm: x_T must be an N x ... tensor");
  const int64_t n = x_T.size(0), steps = static_cast<int64_t>(timesteps.size());
  auto t_opts = torch::dtype(torch::kFloat).device(x_T.device());
  if (var == DdpmVariance::Learned && !d.learned_variance())
    throw Error(
        "sample.variance = learned needs a model trained with diffusion.learn_sigma = "
        "true; use beta or beta_tilde");
  torch::Tensor x = std::move(x_T);
  for (int64_t i = 0; i < steps; ++i) {
    const int64_t t = timesteps[i];
    const double ab = sched.alpha_bar(t);
    const double ab_prev = i + 1 < steps ? sched.alpha_bar(timesteps[i + 1]) : 1.0;
    const double beta = 1.0 - ab / ab_prev;
    // predict x0 from eps_theta (eq. 4 inverted), optionally clipped
    const auto p = d.predict(x, torch::full({n}, static_cast<double>(t), t_opts), cond, clip_x0);
    const torch::Tensor& x0 = p.x0;
    // posterior mean mu~_t(x_t, x0) (eq. 7)
    const double c0 = std::sqrt(ab_prev) * beta / (1.0 - ab);
    const double ct = std::sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab);
    x = x0 * c0 + x * ct;
    // add sigma_t z except at the last step (Alg. 2: z = 0 when t = 1)
    if (i + 1 < steps) {
      const double tilde = beta * (1.0 - ab_prev) / (1.0 - ab);
      if (var == DdpmVariance::Learned) {
        // Nichol & Dhariwal 2021, eq. 15 over the respaced process's beta and beta-tilde.
        const torch::Tensor log_var = p.v * std::log(beta) + (1.0 - p.v) * std::log(tilde);
        x.add_(noise.like(x) * torch::exp(0.5 * log_var));
      } else {
        x.add_(noise.like(x), std::sqrt(var == DdpmVariance::Beta ? beta : tilde));
      }
    }
    if (callback) callback(i + 1, steps);
  }
  return x;
}

}  // namespace gm::sampling
