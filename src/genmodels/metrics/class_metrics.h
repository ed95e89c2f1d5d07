// Class metrics from the domain classifier: conditional accuracy (share of class-conditional
// samples classified as the requested class, the "classification accuracy score" idea of
// Ravuri & Vinyals 2019 read the other way round) and mode coverage as the entropy of the
// predicted-class histogram (Srivastava et al. 2017, VEEGAN, count of covered modes).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace gm::metrics {

/// Predicted-class histogram and its entropy.
struct ClassHistogram {
  std::vector<int64_t> counts;    ///< samples per predicted class
  double entropy_nats = 0;        ///< H = -sum_c q_c log q_c, q_c = counts_c / N
  double entropy_normalised = 0;  ///< H / log(C), 1 = uniform over the C classes
};

/// Share of samples whose predicted class (int64 N) equals the requested class (int64 N).
double class_accuracy(const torch::Tensor& predicted, const torch::Tensor& requested);

/// class_accuracy within each requested class 0..num_classes-1 (NaN for a class never requested).
std::vector<double> class_accuracy_per_class(const torch::Tensor& predicted,
                                             const torch::Tensor& requested,
                                             int64_t num_classes = 10);

/// Histogram of predicted classes in [0, num_classes) and its entropy in nats and / log C.
ClassHistogram class_histogram(const torch::Tensor& predicted, int64_t num_classes = 10);

}  // namespace gm::metrics
