// NCSN noise levels (see ncsn.h for the papers).
#include "genmodels/score/ncsn.h"

#include <cmath>

#include "genmodels/core/error.h"

namespace gm::score {

double max_pairwise_distance(const torch::Tensor& x, const std::function<void(double)>& progress) {
  torch::NoGradGuard no_grad;
  const int64_t n = x.size(0);
  if (n < 2)
    throw Error("max_pairwise_distance: needs at least 2 examples, got " + std::to_string(n));
  const torch::Tensor f = x.reshape({n, -1}).to(torch::kFloat);
  const torch::Tensor sq = f.square().sum(1);
  constexpr int64_t kBlock = 2048;
  double best = 0.0;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const double pairs = 0.5 * double(blocks) * double(blocks + 1);
  double done = 0.0;
  for (int64_t i = 0; i < n; i += kBlock) {
    const int64_t bi = std::min(kBlock, n - i);
    const torch::Tensor a = f.narrow(0, i, bi), sa = sq.narrow(0, i, bi).unsqueeze(1);
    for (int64_t j = i; j < n; j += kBlock) {  // upper triangle of blocks
      const int64_t bj = std::min(kBlock, n - j);
      const torch::Tensor d2 =
          sa + sq.narrow(0, j, bj).unsqueeze(0) - 2.0 * torch::mm(a, f.narrow(0, j, bj).t());
      best = std::max(best, d2.max().item<double>());
      if (progress) progress(++done / pairs);
    }
  }
  return std::sqrt(std::max(best, 0.0));
}

double ncsn_gamma(int64_t D) {
  if (D < 1) throw Error("ncsn_gamma: D = " + std::to_string(D) + " must be >= 1");
  const double r = std::sqrt(2.0 * double(D));
  auto phi = [](double v) { return 0.5 * std::erfc(-v / std::sqrt(2.0)); };
  auto f = [&](double g) { return phi(r * (g - 1.0) + 3.0 * g) - phi(r * (g - 1.0) - 3.0 * g); };
  double lo = 1.0, hi = 2.0;  // f(1) = 0.997 > 0.5 and f falls with gamma
  if (f(hi) > 0.5) return hi;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (f(mid) > 0.5 ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

std::vector<double> ncsn_sigmas(double sigma_1, double sigma_L, int64_t num_levels, int64_t D) {
  if (!(sigma_L > 0.0) || !(sigma_1 > sigma_L))
    throw Error("ncsn.sigma_max = " + num(sigma_1) + ", ncsn.sigma_min = " + num(sigma_L) +
                ": needs 0 < sigma_min < sigma_max");
  if (num_levels < 0 || num_levels == 1)
    throw Error("ncsn.num_levels = " + std::to_string(num_levels) +
                " must be >= 2 (or 0 to choose it by NCSNv2's technique 2)");
  int64_t L = num_levels;
  if (L == 0)
    L = 1 + static_cast<int64_t>(std::ceil(std::log(sigma_1 / sigma_L) / std::log(ncsn_gamma(D))));
  std::vector<double> s(L);
  for (int64_t i = 0; i < L; ++i)
    s[i] = sigma_1 * std::pow(sigma_L / sigma_1, double(i) / double(L - 1));
  return s;
}

diffusion::NoiseSchedule ncsn_schedule(const std::vector<double>& sigmas) {
  return diffusion::schedule_from_sigmas({sigmas.rbegin(), sigmas.rend()}, "ncsn");
}

}  // namespace gm::score
