// Frechet distance between Gaussians fitted to feature sets: the FID of Heusel et al. 2017,
// "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", eq. (6)
// (Dowson & Landau 1982 for the closed form). Double precision throughout; the matrix square root
// uses symmetric eigendecompositions instead of scipy's sqrtm (Schur).
#pragma once
#include <torch/torch.h>

namespace gm::metrics {

/// Mean and covariance of a feature set.
struct FeatureStats {
  torch::Tensor mu;     ///< F float64
  torch::Tensor sigma;  ///< F x F float64, unbiased (N - 1) covariance
};

/// mu = mean_i f_i, sigma = sum_i (f_i - mu)(f_i - mu)^T / (N - 1) of N x F features (N >= 2).
FeatureStats feature_stats(const torch::Tensor& features);

/// tr(sqrtm(S1 S2)) = sum_i sqrt(eig_i(sqrt(S1) S2 sqrt(S1))), sqrt(S1) via eigh (tiny negatives
/// clamped); S1, S2 symmetric positive semi-definite.
double trace_sqrt_product(const torch::Tensor& sigma1, const torch::Tensor& sigma2);

/// d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}) (Frechet distance of two Gaussians).
double frechet_distance(const torch::Tensor& mu1, const torch::Tensor& sigma1,
                        const torch::Tensor& mu2, const torch::Tensor& sigma2);

/// Frechet distance of two stats.
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

/// FID of two feature sets (N x F each): frechet_distance(feature_stats(a), feature_stats(b)).
double fid(const torch::Tensor& features_a, const torch::Tensor& features_b);

}  // namespace gm::metrics
