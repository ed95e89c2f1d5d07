// Mixed precision for network evaluation: "bf16" runs convolutions and matmuls under LibTorch's
// CPU autocast in bfloat16 (weights, optimizer state and losses stay fp32); "fp32" is plain.
// On this machine (avx512_bf16) bf16 trains the default U-Net about 1.36x faster
// (bench/unet_bench, bench/unet_bf16_exp).
#pragma once
#include <string>

namespace gm::nn {

enum class Precision { Fp32, Bf16 };

/// "fp32" | "bf16"; the error names `key` and the valid values.
Precision parse_precision(const std::string& name, const std::string& key);

/// Enables CPU autocast to bf16 for its lifetime (no-op for fp32); nests safely.
class AutocastScope {
 public:
  explicit AutocastScope(Precision precision);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool was_enabled_ = false;
};

}  // namespace gm::nn
