// Bits/dim and the uniform-dequantisation correction; see bits_per_dim.h.
#include "genmodels/metrics/bits_per_dim.h"

#include <cmath>
#include <string>

#include "genmodels/core/error.h"

namespace gm::metrics {

double bits_per_dim(double nll_nats_per_example, int64_t dims) {
  if (dims < 1) throw Error("bits_per_dim: dims must be >= 1, got " + std::to_string(dims));
  return nll_nats_per_example / (double(dims) * std::log(2.0));
}

double dequantised_nll(double continuous_nll_nats_per_example, int64_t dims, double range) {
  if (dims < 1 || !(range > 0))
    throw Error("dequantised_nll: dims must be >= 1 and range > 0 (1 for [0,1], 2 for [-1,1])");
  return continuous_nll_nats_per_example + double(dims) * std::log(256.0 / range);
}

double bits_per_dim_dequantised(double continuous_nll_nats_per_example, int64_t dims,
                                double range) {
  return bits_per_dim(dequantised_nll(continuous_nll_nats_per_example, dims, range), dims);
}

}  // namespace gm::metrics
