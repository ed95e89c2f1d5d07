// FID against closed forms: self-distance, diagonal / commuting covariances, a non-commuting 2x2
// case through the closed-form 2x2 matrix square root, and sampled Gaussians.
#include <gtest/gtest.h>

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/metrics/fid.h"

namespace gm::metrics {
namespace {

torch::Tensor dbl(std::vector<double> v) { return torch::tensor(v, torch::kFloat64); }

// ||mu1 - mu2||^2 + sum_i (a_i + b_i - 2 sqrt(a_i b_i)) for covariances Q diag(a) Q^T, Q diag(b)
// Q^T.
double closed_form_commuting(const torch::Tensor& mu1, const torch::Tensor& a,
                             const torch::Tensor& mu2, const torch::Tensor& b) {
  return (mu1 - mu2).pow(2).sum().item<double>() +
         (a + b - 2 * (a * b).sqrt()).sum().item<double>();
}

TEST(Fid, SetWithItselfIsZero) {
  torch::manual_seed(1);
  torch::Tensor f = torch::randn({3000, 32}, torch::kFloat64).pow(3) + 0.5;  // non-Gaussian
  FeatureStats s = feature_stats(f);
  const double scale = s.sigma.trace().item<double>();
  EXPECT_LT(std::abs(fid(f, f)), 1e-6 * scale);
}

TEST(Fid, RankDeficientSetWithItselfIsZero) {
  torch::manual_seed(2);
  torch::Tensor f = torch::zeros({500, 64}, torch::kFloat64);
  f.slice(1, 0, 10) = torch::randn({500, 10}, torch::kFloat64).relu();  // many constant features
  const double scale = feature_stats(f).sigma.trace().item<double>();
  EXPECT_LT(std::abs(fid(f, f)), 1e-6 * scale);
}

TEST(Fid, DiagonalCovariancesMatchClosedForm) {
  torch::Tensor mu1 = dbl({0, 1, 2, 3}), mu2 = dbl({1, 1, -1, 0.5});
  torch::Tensor a = dbl({1, 2, 0.5, 4}), b = dbl({3, 0.1, 0.5, 1});
  const double expected = closed_form_commuting(mu1, a, mu2, b);
  EXPECT_NEAR(frechet_distance(mu1, torch::diag(a), mu2, torch::diag(b)), expected, 1e-10);
}

TEST(Fid, CommutingRotatedCovariancesMatchClosedForm) {
  torch::manual_seed(3);
  const int64_t d = 20;
  auto [q, r] = torch::linalg::qr(torch::randn({d, d}, torch::kFloat64));
  torch::Tensor a = torch::rand({d}, torch::kFloat64) * 3 + 0.01;
  torch::Tensor b = torch::rand({d}, torch::kFloat64) * 2;
  b[0] = 0;  // a singular covariance
  torch::Tensor s1 = q.matmul(torch::diag(a)).matmul(q.t());
  torch::Tensor s2 = q.matmul(torch::diag(b)).matmul(q.t());
  torch::Tensor mu1 = torch::randn({d}, torch::kFloat64), mu2 = torch::randn({d}, torch::kFloat64);
  EXPECT_NEAR(frechet_distance(mu1, s1, mu2, s2), closed_form_commuting(mu1, a, mu2, b), 1e-9);
}

TEST(Fid, NonCommuting2x2MatchesClosedFormSqrt) {
  // S1 S2 != S2 S1. For a 2x2 M with positive eigenvalues, sqrt(M) = (M + sqrt(det M) I) / t with
  // t = sqrt(tr M + 2 sqrt(det M)), so tr sqrt(M) = t.
  torch::Tensor s1 = dbl({2, 1, 1, 2}).reshape({2, 2});
  torch::Tensor s2 = dbl({1, 0.3, 0.3, 3}).reshape({2, 2});
  torch::Tensor m = s1.matmul(s2);
  ASSERT_GT((m - s2.matmul(s1)).abs().max().item<double>(), 0.1);
  const double det = torch::det(m).item<double>(), tr = m.trace().item<double>();
  const double t = std::sqrt(tr + 2 * std::sqrt(det));
  torch::Tensor sqrt_m = (m + std::sqrt(det) * torch::eye(2, torch::kFloat64)) / t;
  ASSERT_LT((sqrt_m.matmul(sqrt_m) - m).abs().max().item<double>(), 1e-12);  // it is the root
  EXPECT_NEAR(trace_sqrt_product(s1, s2), t, 1e-12);
  EXPECT_NEAR(trace_sqrt_product(s2, s1), t, 1e-12);
  torch::Tensor mu1 = dbl({0.5, -1}), mu2 = dbl({0, 2});
  const double expected = 0.25 + 9 + s1.trace().item<double>() + s2.trace().item<double>() - 2 * t;
  EXPECT_NEAR(frechet_distance(mu1, s1, mu2, s2), expected, 1e-12);
}

TEST(Fid, SampledGaussiansApproachPopulationValue) {
  torch::manual_seed(4);
  const int64_t n = 200000;
  torch::Tensor a = dbl({1, 4, 0.25}), b = dbl({2, 1, 1});
  torch::Tensor mu1 = dbl({0, 0, 0}), mu2 = dbl({1, 0, -1});
  torch::Tensor x = torch::randn({n, 3}, torch::kFloat64) * a.sqrt() + mu1;
  torch::Tensor y = torch::randn({n, 3}, torch::kFloat64) * b.sqrt() + mu2;
  const double expected = closed_form_commuting(mu1, a, mu2, b);
  EXPECT_NEAR(fid(x, y), expected, 0.02 * expected);
}

TEST(Fid, RejectsMismatchedShapes) {
  EXPECT_THROW(frechet_distance(torch::zeros({3}), torch::eye(3), torch::zeros({4}), torch::eye(4)),
               gm::Error);
  EXPECT_THROW(feature_stats(torch::zeros({1, 3})), gm::Error);
}

}  // namespace
}  // namespace gm::metrics
