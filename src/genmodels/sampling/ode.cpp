// The probability-flow ODE (Song et al. 2021, "Score-Based Generative Modeling through
// Stochastic Differential Equations", eq. 13; in sigma space Karras et al. 2022 eq. 3:
// dx/dsigma = (x - D(x; sigma)) / sigma) solved by adaptive RK45 (sampling/rk45.h) in u = log
// sigma, where it reads dx/du = x - D(x; e^u): from the grid's first sigma down to its last
// nonzero one, then the step to sigma = 0, x = D (the Euler step's limit, one more evaluation).
// Each sample gets its own step sizes (and so its own sigmas: D is called with a per-row sigma).
#include <cmath>

#include "genmodels/sampling/rk45.h"
#include "genmodels/sampling/sigma_samplers.h"

namespace gm::sampling {

torch::Tensor sample_ode(torch::Tensor x, const SigmaArgs& a) {
  const auto& s = a.sigmas;
  const double hi = s.front();
  double lo = hi;
  for (double v : s)
    if (v > 0.0) lo = v;
  Rk45Options ro;
  ro.rtol = a.o.rtol;
  ro.atol = a.o.atol;
  constexpr int64_t kTicks = 1000;  // progress in thousandths of [log sigma_max, log sigma_min]
  auto f = [&](const torch::Tensor& y, const torch::Tensor& u, const torch::Tensor& rows) {
    return y - a.m.rows(y, torch::exp(u), rows);
  };
  Rk45Result r = solve_rk45(f, std::move(x), std::log(hi), std::log(lo), ro, [&](double frac) {
    if (a.callback) a.callback(static_cast<int64_t>(std::floor(frac * (kTicks - 1))), kTicks);
  });
  torch::Tensor out = a.m(r.y, lo);
  if (a.callback) a.callback(kTicks, kTicks);
  return out;
}

}  // namespace gm::sampling
