// DDIM with eta = 0 (Song et al. 2021, eq. 12) is the Euler method on the probability-flow ODE
// dx/dsigma = (x - D(x; sigma)) / sigma in sigma space (Karras et al. 2022, Sec. 4 and eq. 3),
// stepping over the sigmas of the same timesteps, with x_sigma = x_t / sqrt(abar).
#include <gtest/gtest.h>

#include <cmath>

#include "gaussian_oracle.h"
#include "genmodels/diffusion/denoiser.h"
#include "genmodels/sampling/ddim.h"
#include "genmodels/sampling/timesteps.h"

namespace {

using namespace gm::diffusion;
using namespace gm::sampling;

constexpr double kS = 0.3;

NetFn gaussian_net(const NoiseSchedule& sched, torch::Tensor mu, Prediction p) {
  return gm::test::gaussian_net(sched, std::move(mu), kS, p);
}

// Karras et al. 2022, Alg. 1 without the Heun correction: Euler steps in sigma, last to 0.
torch::Tensor euler_sigma(const Denoiser& d, const torch::Tensor& x_T,
                          const std::vector<int64_t>& ts) {
  const auto& sched = d.schedule();
  auto sigmas = sigma_at(sched, torch::tensor(ts, torch::kDouble));
  const int64_t n = x_T.size(0), steps = static_cast<int64_t>(ts.size());
  auto x = x_T / std::sqrt(sched.alpha_bar(ts[0]));
  for (int64_t i = 0; i < steps; ++i) {
    const double s = sigmas[i].item<double>();
    const double s_next = i + 1 < steps ? sigmas[i + 1].item<double>() : 0.0;
    auto den = d.denoise(x, torch::full({n}, s, torch::kFloat));
    x = x + (s_next - s) * (x - den) / s;
  }
  return x;
}

TEST(SigmaEuler, DdimEta0IsEulerInSigma) {
  auto mu = torch::tensor({0.5f, -0.3f, 0.2f}).unsqueeze(0);
  torch::manual_seed(0);
  auto x_T = torch::randn({2000, 3});
  for (const auto& sched : {linear_schedule(1000), cosine_schedule(1000)}) {
    for (auto sp : {Spacing::Trailing, Spacing::Linspace}) {
      auto ts = respace_timesteps(1000, 50, sp);
      for (auto p : {Prediction::Eps, Prediction::X0, Prediction::V}) {
        Denoiser d(gaussian_net(sched, mu, p), p, sched);
        auto ddim = sample_ddim(d, x_T.clone(), ts, 0.0);
        auto euler = euler_sigma(d, x_T, ts);
        // float32: linear agrees to ~7e-7; cosine (sigma_max ~ 2e4) to ~6e-5, the first step's
        // x + (sigma_next - sigma) d cancelling two terms of size ~sigma_max |x_T|
        const double scale = ddim.abs().max().item<double>();
        const double err = (euler - ddim).abs().max().item<double>();
        EXPECT_LT(err, 1e-4 * scale) << sched.name << " " << to_string(sp) << " " << to_string(p);
      }
    }
  }
}

}  // namespace
