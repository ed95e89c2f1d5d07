// Conditional accuracy and predicted-class entropy; see class_metrics.h.
#include "genmodels/metrics/class_metrics.h"

#include <cmath>

#include "genmodels/core/error.h"

namespace gm::metrics {

double class_accuracy(const torch::Tensor& predicted, const torch::Tensor& requested) {
  if (predicted.dim() != 1 || requested.dim() != 1 || predicted.size(0) != requested.size(0))
    throw Error(
        "class_accuracy: predicted and requested labels must be int64 N of equal length, "
        "got " +
        c10::str(predicted.sizes()) + " and " + c10::str(requested.sizes()));
  if (predicted.size(0) == 0) return 0.0;
  return predicted.to(torch::kInt64)
      .eq(requested.to(torch::kInt64))
      .to(torch::kFloat64)
      .mean()
      .item<double>();
}

std::vector<double> class_accuracy_per_class(const torch::Tensor& predicted,
                                             const torch::Tensor& requested, int64_t num_classes) {
  class_accuracy(predicted, requested);  // the shape checks
  const torch::Tensor req = requested.to(torch::kInt64);
  const torch::Tensor hit = predicted.to(torch::kInt64).eq(req).to(torch::kFloat64);
  std::vector<double> out;
  for (int64_t k = 0; k < num_classes; ++k) {
    const torch::Tensor in_k = req.eq(k);
    out.push_back(in_k.any().item<bool>() ? hit.masked_select(in_k).mean().item<double>()
                                          : std::nan(""));
  }
  return out;
}

ClassHistogram class_histogram(const torch::Tensor& predicted, int64_t num_classes) {
  if (predicted.dim() != 1 || num_classes < 2)
    throw Error("class_histogram: need int64 N predictions and >= 2 classes, got shape " +
                c10::str(predicted.sizes()));
  torch::Tensor p = predicted.to(torch::kInt64);
  if (p.numel() > 0 && (p.min().item<int64_t>() < 0 || p.max().item<int64_t>() >= num_classes))
    throw Error("class_histogram: predictions must lie in [0, " + std::to_string(num_classes) +
                ")");
  torch::Tensor counts = torch::bincount(p, {}, num_classes);
  ClassHistogram h;
  h.counts.assign(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + num_classes);
  const double n = double(p.numel());
  for (int64_t c : h.counts)
    if (c > 0) h.entropy_nats -= (double(c) / n) * std::log(double(c) / n);
  h.entropy_normalised = h.entropy_nats / std::log(double(num_classes));
  return h;
}

}  // namespace gm::metrics
