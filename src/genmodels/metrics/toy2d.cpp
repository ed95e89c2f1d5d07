// Sliced Wasserstein distance and RBF-kernel MMD for 2-D toys; see toy2d.h.
#include "genmodels/metrics/toy2d.h"

#include <ATen/CPUGeneratorImpl.h>

#include "genmodels/core/error.h"

namespace gm::metrics {

namespace {

void check_pair(const torch::Tensor& x, const torch::Tensor& y, const char* fn) {
  if (x.dim() != 2 || y.dim() != 2 || x.size(1) != y.size(1) || x.size(0) < 2 || y.size(0) < 2)
    throw Error(std::string(fn) + ": need two N x D sample sets (N >= 2, same D), got " +
                c10::str(x.sizes()) + " and " + c10::str(y.sizes()));
}

// Mean of the off-diagonal entries of a square kernel matrix.
double off_diagonal_mean(const torch::Tensor& k) {
  const double m = double(k.size(0));
  return (k.sum().item<double>() - k.trace().item<double>()) / (m * (m - 1));
}

}  // namespace

double sliced_wasserstein(const torch::Tensor& x_in, const torch::Tensor& y_in,
                          const SlicedWassersteinOptions& o) {
  check_pair(x_in, y_in, "sliced_wasserstein");
  if (o.projections < 1)
    throw Error("sliced_wasserstein: projections must be >= 1, got " +
                std::to_string(o.projections));
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  torch::Tensor x = x_in.to(torch::kFloat64), y = y_in.to(torch::kFloat64);
  const int64_t m = std::min(x.size(0), y.size(0));
  if (x.size(0) > m) x = x.index_select(0, torch::randperm(x.size(0), gen).slice(0, 0, m));
  if (y.size(0) > m) y = y.index_select(0, torch::randperm(y.size(0), gen).slice(0, 0, m));
  // theta ~ uniform on the sphere: normalised Gaussian directions (D x P)
  torch::Tensor theta = torch::randn({x.size(1), o.projections}, gen, torch::kFloat64);
  theta = theta / theta.norm(2, 0, true);
  torch::Tensor px = std::get<0>(torch::matmul(x, theta).sort(0));
  torch::Tensor py = std::get<0>(torch::matmul(y, theta).sort(0));
  return (px - py).abs().mean().item<double>();
}

double median_bandwidth(const torch::Tensor& x, const torch::Tensor& y, const MmdOptions& o) {
  check_pair(x, y, "median_bandwidth");
  torch::Tensor z = torch::cat({x, y}).to(torch::kFloat64);
  if (z.size(0) > o.median_points) {
    at::Generator gen = at::detail::createCPUGenerator(o.seed);
    z = z.index_select(0, torch::randperm(z.size(0), gen).slice(0, 0, o.median_points));
  }
  torch::Tensor d = torch::cdist(z, z);
  const int64_t n = z.size(0);
  torch::Tensor upper = d.masked_select(torch::ones({n, n}, torch::kBool).triu(1));
  const double med = upper.median().item<double>();
  if (!(med > 0))
    throw Error("median_bandwidth: all points coincide; pass an explicit bandwidth > 0");
  return med;
}

double mmd_rbf(const torch::Tensor& x_in, const torch::Tensor& y_in, const MmdOptions& o) {
  check_pair(x_in, y_in, "mmd_rbf");
  if (o.bandwidth < 0)
    throw Error("mmd_rbf: bandwidth must be > 0 (or 0 for the median heuristic), got " +
                std::to_string(o.bandwidth));
  const double sigma = o.bandwidth > 0 ? o.bandwidth : median_bandwidth(x_in, y_in, o);
  torch::Tensor x = x_in.to(torch::kFloat64), y = y_in.to(torch::kFloat64);
  // k(a, b) = exp(-|a - b|^2 / (2 sigma^2))
  auto kernel = [sigma](const torch::Tensor& a, const torch::Tensor& b) {
    return torch::exp(-torch::cdist(a, b).pow(2) / (2 * sigma * sigma));
  };
  return off_diagonal_mean(kernel(x, x)) + off_diagonal_mean(kernel(y, y)) -
         2.0 * kernel(x, y).mean().item<double>();
}

}  // namespace gm::metrics
