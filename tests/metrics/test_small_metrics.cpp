// Inception-Score analogue, class metrics, 2-D toy distances and bits/dim on exact cases.
#include <gtest/gtest.h>

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/metrics/bits_per_dim.h"
#include "genmodels/metrics/class_metrics.h"
#include "genmodels/metrics/inception_score.h"
#include "genmodels/metrics/toy2d.h"

namespace gm::metrics {
namespace {

TEST(InceptionScore, UninformativeIsOneConfidentBalancedIsClassCount) {
  EXPECT_NEAR(inception_score(torch::zeros({100, 10}), 10).mean, 1.0, 1e-12);
  torch::Tensor labels = torch::arange(1000) % 10;
  torch::Tensor logits = torch::one_hot(labels, 10).to(torch::kFloat64) * 100.0;
  InceptionScore s = inception_score(logits, 10);
  EXPECT_NEAR(s.mean, 10.0, 1e-6);
  EXPECT_NEAR(s.std, 0.0, 1e-6);
  // all samples confidently one class: no diversity -> 1
  EXPECT_NEAR(inception_score(torch::one_hot(labels * 0, 10).to(torch::kFloat64) * 100, 5).mean,
              1.0, 1e-6);
}

TEST(ClassMetrics, AccuracyAndEntropy) {
  torch::Tensor pred = torch::tensor({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, torch::kInt64);
  EXPECT_DOUBLE_EQ(class_accuracy(pred, pred), 1.0);
  EXPECT_DOUBLE_EQ(class_accuracy(pred, (pred + 1) % 10), 0.0);
  ClassHistogram h = class_histogram(pred, 10);
  EXPECT_EQ(h.counts, std::vector<int64_t>(10, 1));
  EXPECT_NEAR(h.entropy_nats, std::log(10.0), 1e-12);
  EXPECT_NEAR(h.entropy_normalised, 1.0, 1e-12);
  ClassHistogram one = class_histogram(torch::full({7}, 3, torch::kInt64), 10);
  EXPECT_EQ(one.counts[3], 7);
  EXPECT_DOUBLE_EQ(one.entropy_nats, 0.0);
  ClassHistogram two = class_histogram(torch::tensor({1, 1, 2, 2}, torch::kInt64), 10);
  EXPECT_NEAR(two.entropy_normalised, std::log(2.0) / std::log(10.0), 1e-12);
  EXPECT_THROW(class_histogram(torch::tensor({10}, torch::kInt64), 10), gm::Error);
  // Per requested class: class 0 asked 3 times, right twice; class 2 asked once, wrong; class 1
  // never asked (NaN).
  const auto per = class_accuracy_per_class(torch::tensor({0, 0, 1, 1}, torch::kInt64),
                                            torch::tensor({0, 0, 0, 2}, torch::kInt64), 3);
  ASSERT_EQ(per.size(), 3u);
  EXPECT_DOUBLE_EQ(per[0], 2.0 / 3.0);
  EXPECT_TRUE(std::isnan(per[1]));
  EXPECT_DOUBLE_EQ(per[2], 0.0);
}

TEST(Toy2d, SlicedWassersteinSameIsSmallShiftedMatchesTheory) {
  torch::manual_seed(30);
  torch::Tensor x = torch::randn({4000, 2}), y = torch::randn({3000, 2});
  EXPECT_LT(sliced_wasserstein(x, y), 0.06);
  // shifting by s: W1 of each projection is |s . theta|, whose mean over the circle is 2|s|/pi
  torch::Tensor shifted = y + torch::tensor({3.0f, 0.0f});
  SlicedWassersteinOptions o;
  o.projections = 2000;
  EXPECT_NEAR(sliced_wasserstein(x, shifted, o), 6.0 / M_PI, 0.1);
  EXPECT_EQ(sliced_wasserstein(x, y, {64, 5}), sliced_wasserstein(x, y, {64, 5}));
}

TEST(Toy2d, MmdSameIsNearZeroShiftedIsLarge) {
  torch::manual_seed(31);
  torch::Tensor x = torch::randn({1500, 2}), y = torch::randn({1500, 2});
  EXPECT_LT(std::abs(mmd_rbf(x, y)), 0.005);
  EXPECT_GT(mmd_rbf(x, y + 3.0), 0.2);
  MmdOptions fixed;
  fixed.bandwidth = 1.0;
  EXPECT_LT(std::abs(mmd_rbf(x, y, fixed)), 0.005);
  EXPECT_GT(mmd_rbf(x, y + 3.0, fixed), 0.5);
  // median heuristic of two standard normals in 2-D: median |a - b| = sqrt(2) * sqrt(2 ln 2)
  EXPECT_NEAR(median_bandwidth(x, y), std::sqrt(4 * std::log(2.0)), 0.06);
}

TEST(BitsPerDim, ConversionAndDequantisation) {
  EXPECT_NEAR(bits_per_dim(784 * 3 * std::log(2.0), 784), 3.0, 1e-12);
  // a density with -log p(x) = 0 on [-1,1] data: bin width 2/256 -> log2(128) = 7 bits per dim
  EXPECT_NEAR(bits_per_dim_dequantised(0.0, 784, 2.0), 7.0, 1e-12);
  EXPECT_NEAR(bits_per_dim_dequantised(0.0, 784, 1.0), 8.0, 1e-12);
  // uniform density on [-1,1]^D: -log p = D log 2 -> exactly 8 bits (uniform over 256 levels)
  EXPECT_NEAR(bits_per_dim_dequantised(784 * std::log(2.0), 784, 2.0), 8.0, 1e-12);
  EXPECT_THROW(bits_per_dim(1.0, 0), gm::Error);
}

}  // namespace
}  // namespace gm::metrics
