// The exact denoiser of Gaussian data, shared by the sigma-space tests: for x0 ~ N(mu, s^2 I),
// eps*(x_t, t) = sqrt(1-abar) (x_t - sqrt(abar) mu) / (abar s^2 + 1 - abar) (from Ho et al. 2020
// eq. 4 and the Gaussian posterior), exposed in any parameterisation.
#pragma once
#include <torch/torch.h>

#include "genmodels/diffusion/denoiser.h"
#include "genmodels/diffusion/schedule.h"

namespace gm::test {

inline diffusion::NetFn gaussian_net(const diffusion::NoiseSchedule& sched, torch::Tensor mu,
                                     double s, diffusion::Prediction p) {
  using namespace gm::diffusion;
  return [sched, mu, s, p](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor&) {
    auto abar = alpha_bar_at(sched, t).to(torch::kFloat).view({-1, 1});
    auto eps = torch::sqrt(1 - abar) * (x - torch::sqrt(abar) * mu) / (abar * s * s + 1 - abar);
    switch (p) {
      case Prediction::Eps:
        return eps;
      case Prediction::X0:
        return eps_to_x0(x, eps, abar);
      case Prediction::V:
        return eps_to_v(x, eps, abar);
    }
    return eps;
  };
}

}  // namespace gm::test
