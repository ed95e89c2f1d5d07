// Kernel Inception Distance: the unbiased estimator of squared MMD (Gretton et al. 2012, "A Kernel
// Two-Sample Test", eq. (3)) with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged
// over random subsets (Binkowski et al. 2018, "Demystifying MMD GANs", section 4).
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace gm::metrics {

/// Settings of the subset estimator.
struct KidOptions {
  int64_t subsets = 100;       ///< number of random subset pairs
  int64_t subset_size = 1000;  ///< rows per subset (capped at the smaller set's size)
  uint64_t seed = 0;           ///< seeds the subset draws
};

/// Mean and standard deviation of the per-subset estimates.
struct KidResult {
  double mean = 0;
  double std = 0;
};

/// MMD^2_u = sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 sum
/// k(x_i,y_j)/m^2.
double mmd2_unbiased_polynomial(const torch::Tensor& x, const torch::Tensor& y);

/// KID of feature sets x (N x F) and y (M x F): mean/std of MMD^2_u over seeded subsets drawn
/// without replacement within a subset.
KidResult kid(const torch::Tensor& x, const torch::Tensor& y, const KidOptions& options = {});

}  // namespace gm::metrics
