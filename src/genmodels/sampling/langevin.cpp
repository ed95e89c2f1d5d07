// Annealed Langevin dynamics (Song & Ermon 2019, "Generative Modeling by Estimating Gradients of
// the Data Distribution", Alg. 1), the sampler of NCSN, on any model through its sigma-space
// score s(x; sigma) = (D(x; sigma) - x) / sigma^2: for each noise level sigma_i of the grid
// (descending; sigma_L the last nonzero one), T steps of
//   x <- x + alpha_i s(x; sigma_i) + sqrt(2 alpha_i) z,   alpha_i = eps sigma_i^2 / sigma_L^2,
// then the final denoising step of NCSNv2 (Song & Ermon 2020, App. C.2; Tweedie's formula)
// x <- x + sigma_L^2 s(x; sigma_L) = D(x; sigma_L). NFE = L T + 1.
#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/sampling/sigma_samplers.h"

namespace gm::sampling {

double langevin_step_constant(double gamma, int64_t T, double sigma_last) {
  if (!(gamma > 1.0) || T < 1 || !(sigma_last > 0.0))
    throw Error("langevin_step_constant: needs gamma > 1, T >= 1, sigma_L > 0 (got gamma " +
                num(gamma) + ", T " + std::to_string(T) + ", sigma_L " + num(sigma_last) + ")");
  const double s2 = sigma_last * sigma_last;
  // The variance ratio after T steps (gamma^2 at eps -> 0).
  auto ratio = [&](double eps) {
    const double r = 1.0 - eps / s2;
    const double v = 2.0 * eps / (s2 * (1.0 - r * r));
    return std::pow(r, 2.0 * double(T)) * (gamma * gamma - v) + v;
  };
  // |ratio - 1| over a = eps / sigma_L^2 in (0, 1): a log-spaced scan, then a ternary search
  // between the best point's neighbours (the ratio has one minimum; it may stay above 1, as for
  // the paper's CIFAR-10 settings, where the closest value is ~1.056 at eps = 6.2e-6).
  auto dist = [&](double a) { return std::fabs(ratio(a * s2) - 1.0); };
  constexpr int kScan = 2000;
  auto a_at = [](int i) { return std::pow(10.0, -8.0 + 8.0 * i / kScan) * (1.0 - 1e-9); };
  int best = 0;
  for (int i = 1; i <= kScan; ++i)
    if (dist(a_at(i)) < dist(a_at(best))) best = i;
  double lo = a_at(std::max(best - 1, 0)), hi = a_at(std::min(best + 1, kScan));
  for (int i = 0; i < 200; ++i) {
    const double m1 = lo + (hi - lo) / 3, m2 = hi - (hi - lo) / 3;
    if (dist(m1) < dist(m2))
      hi = m2;
    else
      lo = m1;
  }
  return 0.5 * (lo + hi) * s2;
}

namespace {
std::vector<double> positive_levels(const std::vector<double>& sigmas) {
  std::vector<double> levels;
  for (double s : sigmas)
    if (s > 0.0) levels.push_back(s);
  if (levels.empty()) throw Error("langevin: the sigma grid has no positive level");
  return levels;
}
}  // namespace

double langevin_eps_for(const std::vector<double>& sigmas, const SamplerOptions& o) {
  const int64_t T = o.langevin_steps;
  if (T < 1) throw Error("sample.langevin_steps must be >= 1, got " + std::to_string(T));
  if (o.langevin_eps < 0.0)
    throw Error("sample.langevin_eps must be > 0 (or 0 for NCSNv2's choice), got " +
                num(o.langevin_eps));
  if (o.langevin_eps > 0.0) return o.langevin_eps;
  const std::vector<double> levels = positive_levels(sigmas);
  const double last = levels.back();
  // The grid's mean ratio between neighbouring levels (exact for a geometric grid).
  const double gamma = levels.size() > 1
                           ? std::pow(levels.front() / last, 1.0 / double(levels.size() - 1))
                           : 1.0 + 1e-3;
  return langevin_step_constant(gamma, T, last);
}

torch::Tensor sample_langevin(torch::Tensor x, const SigmaArgs& a) {
  const int64_t T = a.o.langevin_steps;
  const double eps = langevin_eps_for(a.sigmas, a.o);
  const std::vector<double> levels = positive_levels(a.sigmas);
  const double last = levels.back();
  const int64_t total = static_cast<int64_t>(levels.size()) * T + 1;
  int64_t done = 0;
  for (double s : levels) {
    const double alpha = eps * (s / last) * (s / last);
    for (int64_t j = 0; j < T; ++j) {
      const torch::Tensor score = (a.m(x, s) - x) / (s * s);
      x = x + score * alpha + a.noise.like(x) * (std::sqrt(2.0 * alpha) * a.o.s_noise);
      if (a.callback) a.callback(++done, total);
    }
  }
  x = a.m(x, last);
  if (a.callback) a.callback(total, total);
  return x;
}

}  // namespace gm::sampling
