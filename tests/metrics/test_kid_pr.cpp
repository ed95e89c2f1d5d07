// KID (near 0 and unbiased for one distribution, > 0 for two) and k-NN precision/recall on
// constructed identical, disjoint and subset cases.
#include <gtest/gtest.h>

#include <cmath>

#include "genmodels/metrics/kid.h"
#include "genmodels/metrics/precision_recall.h"

namespace gm::metrics {
namespace {

TEST(Kid, SameDistributionIsNearZero) {
  torch::manual_seed(10);
  torch::Tensor x = torch::randn({3000, 16}, torch::kFloat64);
  torch::Tensor y = torch::randn({3000, 16}, torch::kFloat64);
  KidResult r = kid(x, y, {50, 500, 0});
  EXPECT_GT(r.std, 0);
  EXPECT_LT(std::abs(r.mean), 3 * r.std);
}

TEST(Kid, EstimatorIsUnbiased) {
  // The mean of many independent small-sample MMD^2_u estimates of equal distributions is ~0
  // (a biased V-statistic would sit clearly above 0 at n = 20).
  torch::manual_seed(11);
  const int64_t reps = 400;
  std::vector<double> v;
  for (int64_t i = 0; i < reps; ++i)
    v.push_back(mmd2_unbiased_polynomial(torch::randn({20, 4}, torch::kFloat64),
                                         torch::randn({20, 4}, torch::kFloat64)));
  double mean = 0, var = 0;
  for (double e : v) mean += e / reps;
  for (double e : v) var += (e - mean) * (e - mean) / (reps - 1);
  EXPECT_LT(std::abs(mean), 4 * std::sqrt(var / reps));
}

TEST(Kid, DifferentDistributionsArePositive) {
  torch::manual_seed(12);
  torch::Tensor x = torch::randn({2000, 16}, torch::kFloat64);
  torch::Tensor y = torch::randn({2000, 16}, torch::kFloat64) * 1.2 + 0.3;
  KidResult r = kid(x, y, {50, 500, 0});
  EXPECT_GT(r.mean, 10 * r.std);
  EXPECT_GT(r.mean, 0.05);
}

TEST(Kid, SeededAndSubsetCappedAtSetSize) {
  torch::manual_seed(13);
  torch::Tensor x = torch::randn({100, 8}), y = torch::randn({80, 8});
  KidResult a = kid(x, y, {5, 1000, 7}), b = kid(x, y, {5, 1000, 7});
  EXPECT_EQ(a.mean, b.mean);
  EXPECT_EQ(a.std, b.std);
}

TEST(PrecisionRecall, RadiiMatchBruteForce) {
  torch::manual_seed(20);
  torch::Tensor f = torch::randn({50, 3}, torch::kFloat64);
  torch::Tensor r = knn_radii(f, 3, 7);  // small batch exercises the batching
  for (int64_t i = 0; i < 50; ++i) {
    torch::Tensor d = std::get<0>((f - f[i]).norm(2, 1).sort());
    EXPECT_NEAR(r[i].item<double>(), d[3].item<double>(), 1e-9);
  }
}

TEST(PrecisionRecall, IdenticalSetsAreOneOne) {
  torch::manual_seed(21);
  torch::Tensor x = torch::randn({800, 8});
  PrecisionRecall pr = precision_recall(x, x.clone(), 3, 128);
  EXPECT_DOUBLE_EQ(pr.precision, 1.0);
  EXPECT_DOUBLE_EQ(pr.recall, 1.0);
}

TEST(PrecisionRecall, DisjointSetsAreZeroZero) {
  torch::manual_seed(22);
  torch::Tensor real = torch::randn({500, 8});
  torch::Tensor fake = torch::randn({500, 8}) + 100.0;
  PrecisionRecall pr = precision_recall(real, fake, 3, 128);
  EXPECT_EQ(pr.precision, 0.0);
  EXPECT_EQ(pr.recall, 0.0);
}

TEST(PrecisionRecall, OneModeOfTwoIsPreciseWithHalfRecall) {
  torch::manual_seed(23);
  torch::Tensor shift = torch::tensor({10.0, 0.0});
  torch::Tensor real =
      torch::cat({torch::randn({1000, 2}) - shift, torch::randn({1000, 2}) + shift});
  torch::Tensor fake = torch::randn({1000, 2}) - shift;  // a fresh sample of the left mode only
  PrecisionRecall pr = precision_recall(real, fake, 3, 256);
  EXPECT_GT(pr.precision, 0.97);
  EXPECT_NEAR(pr.recall, 0.5, 0.03);
}

}  // namespace
}  // namespace gm::metrics
