// Linear multistep (variable-step Adams-Bashforth; Hairer, Norsett & Wanner, "Solving Ordinary
// Differential Equations I", Sec. III.5) on the probability-flow ODE dx/dsigma = (x - D) / sigma
// (Karras et al. 2022 eq. 3): x_{i+1} = x_i + sum_j c_j d_{i-j}, where c_j integrates the
// Lagrange basis polynomial of node sigma_{i-j} (over the last `order` nodes) from sigma_i to
// sigma_{i+1}. The polynomials have degree <= 3, so 4-point Gauss-Legendre quadrature is exact.
#include <algorithm>
#include <cmath>
#include <deque>

#include "genmodels/core/error.h"
#include "genmodels/sampling/sigma_samplers.h"

namespace gm::sampling {

namespace {

// c_j = integral over [s[i], s[i+1]] of prod_{k != j, k < order} (tau - s[i-k]) / (s[i-j] -
// s[i-k]).
double lms_coefficient(int64_t order, const std::vector<double>& s, int64_t i, int64_t j) {
  static const double kNodes[4] = {-0.8611363115940526, -0.3399810435848563, 0.3399810435848563,
                                   0.8611363115940526};
  static const double kWeights[4] = {0.3478548451374538, 0.6521451548625461, 0.6521451548625461,
                                     0.3478548451374538};
  const double a = s[i], b = s[i + 1], half = 0.5 * (b - a), mid = 0.5 * (a + b);
  double total = 0.0;
  for (int q = 0; q < 4; ++q) {
    const double tau = mid + half * kNodes[q];
    double p = 1.0;
    for (int64_t k = 0; k < order; ++k)
      if (k != j) p *= (tau - s[i - k]) / (s[i - j] - s[i - k]);
    total += kWeights[q] * p;
  }
  return total * half;
}

}  // namespace

torch::Tensor sample_lms(torch::Tensor x, const SigmaArgs& a) {
  const int64_t order = a.o.order > 0 ? a.o.order : 4;
  if (order > 4)
    throw Error("sample.order = " + std::to_string(order) + " is not valid for lms; use 1-4");
  const auto& s = a.sigmas;
  const int64_t n = static_cast<int64_t>(s.size()) - 1;
  std::deque<torch::Tensor> ds;  // most recent first
  for (int64_t i = 0; i < n; ++i) {
    ds.push_front((x - a.m(x, s[i])) / s[i]);
    if (static_cast<int64_t>(ds.size()) > order) ds.pop_back();
    const int64_t cur = std::min<int64_t>(i + 1, order);
    for (int64_t j = 0; j < cur; ++j) x = x + ds[j] * lms_coefficient(cur, s, i, j);
    if (a.callback) a.callback(i + 1, n);
  }
  return x;
}

}  // namespace gm::sampling
