#include "genmodels/nn/precision.h"

#include <ATen/autocast_mode.h>

#include "genmodels/core/error.h"
#include "genmodels/nn/bf16_body.h"

namespace gm::nn {

Precision parse_precision(const std::string& name, const std::string& key) {
  if (name == "fp32") return Precision::Fp32;
  if (name == "bf16") return Precision::Bf16;
  throw Error(key + " = '" + name + "' is not a precision; use fp32 or bf16");
}

AutocastScope::AutocastScope(Precision precision) {
  if (precision != Precision::Bf16) return;
  active_ = true;
  was_enabled_ = at::autocast::is_cpu_enabled();
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::set_cpu_enabled(true);
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  at::autocast::set_cpu_enabled(was_enabled_);
  if (!was_enabled_) at::autocast::clear_cache();
}

torch::Tensor forward_bf16_body(torch::nn::Sequential& seq, const torch::Tensor& x) {
  const size_t n = seq->size();
  if (n == 0) return x;
  torch::Tensor h = x;
  {
    AutocastScope autocast(Precision::Bf16);
    size_t i = 0;
    for (auto it = seq->begin(); i + 1 < n; ++it, ++i) h = it->forward(h);
  }
  return (seq->begin() + static_cast<std::ptrdiff_t>(n - 1))->forward(h.to(torch::kFloat32));
}

}  // namespace gm::nn
