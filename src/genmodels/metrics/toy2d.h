// Sample-based distances for low-dimensional (2-D toy) distributions: the sliced Wasserstein
// distance (Rabin et al. 2011, "Wasserstein Barycenter and its Application to Texture Mixing";
// Bonneel et al. 2015) and the unbiased squared MMD with a Gaussian RBF kernel (Gretton et al.
// 2012, "A Kernel Two-Sample Test", eq. (3)) with the median-heuristic bandwidth (ibid., sec. 8).
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace gm::metrics {

struct SlicedWassersteinOptions {
  int64_t projections = 256;  ///< random directions on the unit sphere
  uint64_t seed = 0;          ///< seeds directions and the equal-size subsampling
};

/// SW1(x, y) = mean over directions theta of W1(theta.x, theta.y), W1 of two equal-size 1-D
/// samples = mean |sort(a) - sort(b)|; the larger set is subsampled (seeded) to the smaller's size.
double sliced_wasserstein(const torch::Tensor& x, const torch::Tensor& y,
                          const SlicedWassersteinOptions& options = {});

struct MmdOptions {
  double bandwidth = 0;          ///< RBF sigma in k(a,b) = exp(-|a-b|^2 / (2 sigma^2)); 0 = median
  int64_t median_points = 2000;  ///< pooled points used for the median heuristic
  uint64_t seed = 0;             ///< seeds the median heuristic's subsample
};

/// Median heuristic: median pairwise Euclidean distance of the pooled sample (subsampled).
double median_bandwidth(const torch::Tensor& x, const torch::Tensor& y,
                        const MmdOptions& options = {});

/// MMD^2_u = sum_{i!=j} k(x_i,x_j)/(n(n-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 mean k(x_i,y_j)
/// with a Gaussian RBF kernel; N x D and M x D float tensors.
double mmd_rbf(const torch::Tensor& x, const torch::Tensor& y, const MmdOptions& options = {});

}  // namespace gm::metrics
