// DDIM sampling (Song, Meng & Ermon 2021, eq. 12 and eq. 16).
#include "genmodels/sampling/ddim.h"

#include <algorithm>
#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/sampling/timesteps.h"

namespace gm::sampling {

// Song et al. 2021, eq. 12: x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps
// + sigma z, with sigma = eta sqrt((1-abar_prev)/(1-abar)) sqrt(1 - abar/abar_prev) (eq. 16).
torch::Tensor sample_ddim(const diffusion::Denoiser& d, torch::Tensor x_T,
                          const std::vector<int64_t>& timesteps, double eta,
                          const diffusion::Conditioning& cond, const Noise& noise,
                          const std::function<void(int64_t, int64_t)>& callback, bool clip_x0) {
  torch::NoGradGuard no_grad;
  const auto& sched = d.schedule();
  check_timesteps(timesteps, sched.num_steps(), "sample_ddim");
  if (!(eta >= 0.0)) throw Error("sample_ddim: eta = " + std::to_string(eta) + " must be >= 0");
  if (!x_T.defined() || x_T.dim() < 1) throw Error("sample_ddim: x_T must be an N x ... tensor");
  const int64_t n = x_T.size(0), steps = static_cast<int64_t>(timesteps.size());
  auto t_opts = torch::dtype(torch::kFloat).device(x_T.device());
  torch::Tensor x = std::move(x_T);
  for (int64_t i = 0; i < steps; ++i) {
    const int64_t t = timesteps[i];
    const double ab = sched.alpha_bar(t);
    const double ab_prev = i + 1 < steps ? sched.alpha_bar(timesteps[i + 1]) : 1.0;
    // predicted x0 and eps (eq. 12's "predicted x0" term)
    auto [x0, eps, v] =
        d.predict(x, torch::full({n}, static_cast<double>(t), t_opts), cond, clip_x0);
    // sigma_t(eta) from eq. 16
    const double sigma =
        eta * std::sqrt((1.0 - ab_prev) / (1.0 - ab)) * std::sqrt(1.0 - ab / ab_prev);
    // eq. 12: predicted x0, direction pointing to x_t, random noise
    const double dir = std::sqrt(std::max(1.0 - ab_prev - sigma * sigma, 0.0));
    x = x0 * std::sqrt(ab_prev) + eps * dir;
    if (sigma > 0.0) x.add_(noise.like(x), sigma);
    if (callback) callback(i + 1, steps);
  }
  return x;
}

}  // namespace gm::sampling
