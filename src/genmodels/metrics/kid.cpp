// KID: unbiased polynomial-kernel MMD^2 over subsets (Binkowski et al. 2018); see kid.h.
#include "genmodels/metrics/kid.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/core/progress.h"

namespace gm::metrics {

namespace {

// Mean of the off-diagonal entries of a square kernel matrix.
double off_diagonal_mean(const torch::Tensor& k) {
  const double m = double(k.size(0));
  return (k.sum().item<double>() - k.trace().item<double>()) / (m * (m - 1));
}

void check_features(const torch::Tensor& x, const torch::Tensor& y, const char* fn) {
  if (x.dim() != 2 || y.dim() != 2 || x.size(1) != y.size(1))
    throw Error(std::string(fn) + ": need two N x F feature sets with the same F, got " +
                c10::str(x.sizes()) + " and " + c10::str(y.sizes()));
  if (x.size(0) < 2 || y.size(0) < 2)
    throw Error(std::string(fn) + ": need at least 2 samples per set, got " +
                std::to_string(x.size(0)) + " and " + std::to_string(y.size(0)));
}

}  // namespace

double mmd2_unbiased_polynomial(const torch::Tensor& x_in, const torch::Tensor& y_in) {
  check_features(x_in, y_in, "mmd2_unbiased_polynomial");
  torch::Tensor x = x_in.to(torch::kFloat64), y = y_in.to(torch::kFloat64);
  const double d = double(x.size(1));
  // k(a, b) = (a.b / d + 1)^3
  auto kernel = [d](const torch::Tensor& a, const torch::Tensor& b) {
    return (torch::matmul(a, b.t()) / d + 1.0).pow(3);
  };
  return off_diagonal_mean(kernel(x, x)) + off_diagonal_mean(kernel(y, y)) -
         2.0 * kernel(x, y).mean().item<double>();
}

KidResult kid(const torch::Tensor& x, const torch::Tensor& y, const KidOptions& o) {
  check_features(x, y, "kid");
  if (o.subsets < 1 || o.subset_size < 2)
    throw Error("kid: subsets must be >= 1 and subset_size >= 2, got " + std::to_string(o.subsets) +
                " and " + std::to_string(o.subset_size));
  const int64_t m = std::min({o.subset_size, x.size(0), y.size(0)});
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  std::vector<double> v(o.subsets);
  Progress bar(o.subsets, 0, "kid", 10.0, /*delay_s=*/1.0);
  for (int64_t s = 0; s < o.subsets; ++s) {
    torch::Tensor ix = torch::randperm(x.size(0), gen).slice(0, 0, m);
    torch::Tensor iy = torch::randperm(y.size(0), gen).slice(0, 0, m);
    v[s] = mmd2_unbiased_polynomial(x.index_select(0, ix), y.index_select(0, iy));
    bar.update(s + 1, "subsets");
  }
  bar.finish("");
  KidResult r;
  for (double e : v) r.mean += e / double(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double e : v) ss += (e - r.mean) * (e - r.mean);
    r.std = std::sqrt(ss / double(v.size() - 1));
  }
  return r;
}

}  // namespace gm::metrics
