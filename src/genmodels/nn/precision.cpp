#include "genmodels/nn/precision.h"

#include <ATen/autocast_mode.h>

#include "genmodels/core/error.h"

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

}  // namespace gm::nn
