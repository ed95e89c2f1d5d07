// Mixed precision for network evaluation: "bf16" runs convolutions and matmuls under LibTorch's
// CPU autocast in bfloat16 (weights, optimizer state and losses stay fp32); "fp32" is plain;
// "auto" is bf16 where the CPU computes bf16 natively (AVX-512 BF16 or AMX) and fp32 elsewhere.
// Measured (bench/unet_bench, bench/unet_bf16_exp): on a CPU with avx512_bf16 bf16 trains the
// default U-Net about 1.36x faster; on one with AVX2 only (AMD EPYC, Zen 3) LibTorch 1.13 has no
// fast bf16 convolution and DDIM sampling ran 30x slower in bf16 (7.4 against 222 img-NFE/s).
#pragma once
#include <string>
#include <vector>

namespace gm::nn {

enum class Precision { Fp32, Bf16 };

/// "fp32" | "bf16" | "auto"; the error names `key` and the valid values. An explicit "bf16" on a
/// CPU without native bf16 warns once on stderr (it works, but far slower than fp32).
Precision parse_precision(const std::string& name, const std::string& key);

/// The valid values of a model.precision key, for option tables.
std::vector<std::string> precision_choices();

/// The help text of a model.precision key whose whole network follows it.
inline constexpr const char* kPrecisionHelp =
    "network arithmetic: fp32, bf16 autocast (CPU), or auto (bf16 where the CPU has native bf16, "
    "fp32 elsewhere)";

/// "fp32" or "bf16": what `name` (a valid precision, "auto" included) means on this machine.
std::string resolved_precision_name(const std::string& name, const std::string& key);

/// True when the CPU has AVX-512 BF16 or AMX-BF16 instructions (what "auto" picks bf16 for).
bool cpu_has_native_bf16();

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
