#include "genmodels/nn/precision.h"

#include <ATen/autocast_mode.h>

#include <atomic>
#include <iostream>

#include "genmodels/core/error.h"
#include "genmodels/nn/bf16_body.h"

namespace gm::nn {

bool cpu_has_native_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") || __builtin_cpu_supports("amx-bf16");
#else
  return false;  // other architectures: no check yet, so "auto" stays fp32 there
#endif
}

Precision parse_precision(const std::string& name, const std::string& key) {
  if (name == "fp32") return Precision::Fp32;
  if (name == "auto") return cpu_has_native_bf16() ? Precision::Bf16 : Precision::Fp32;
  if (name == "bf16") {
    static std::atomic<bool> warned{false};
    if (!cpu_has_native_bf16() && !warned.exchange(true))
      std::cerr << "genmodels: WARNING: " << key
                << " = bf16, but this CPU has no native bf16 (avx512_bf16 or amx_bf16): "
                   "LibTorch emulates it, up to 30x slower than fp32 here. Use fp32 or auto\n";
    return Precision::Bf16;
  }
  throw Error(key + " = '" + name + "' is not a precision; use fp32, bf16 or auto");
}

std::vector<std::string> precision_choices() { return {"fp32", "bf16", "auto"}; }

std::string resolved_precision_name(const std::string& name, const std::string& key) {
  return parse_precision(name, key) == Precision::Bf16 ? "bf16" : "fp32";
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
