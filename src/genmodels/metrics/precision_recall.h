// Improved precision and recall of generative models (Kynkaanniemi et al. 2019, "Improved Precision
// and Recall Metric for Assessing Generative Models", eqs. (1)-(3)): each set's manifold is the
// union of balls reaching every sample's k-th nearest neighbour; precision is the share of
// generated samples inside the real manifold, recall the share of real samples inside the
// generated one.
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace gm {
class Progress;
}

namespace gm::metrics {

struct PrecisionRecall {
  double precision = 0;
  double recall = 0;
};

/// Distance of every row of `features` (N x F) to its k-th nearest other row (eq. (1)'s radius).
/// `progress`, when given, advances by the rows done.
torch::Tensor knn_radii(const torch::Tensor& features, int64_t k = 3, int64_t batch = 1000,
                        Progress* progress = nullptr);

/// f(q, Phi) averaged over queries: share of rows of `queries` within ||q - phi|| <= radius(phi)
/// of some row phi of `manifold` (eq. (2)-(3)).
double manifold_coverage(const torch::Tensor& queries, const torch::Tensor& manifold,
                         const torch::Tensor& manifold_radii, int64_t batch = 1000,
                         Progress* progress = nullptr);

/// precision = coverage(fake by real manifold), recall = coverage(real by fake manifold); k = 3.
/// Distances are computed `batch` rows at a time to bound memory (batch x N doubles).
PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& fake,
                                 int64_t k = 3, int64_t batch = 1000);

}  // namespace gm::metrics
