// Raw CPU kernels behind nn/fused_norm.h: GroupNorm (Wu & He 2018, eq. 1-2) with its per-channel
// affine, an optional per-sample FiLM scale/shift (improved diffusion's scale-shift norm, Nichol &
// Dhariwal 2021 / Dhariwal & Nichol 2021 App. A: h = GN(h) * (1 + s) + b) and SiLU (Elfwing et al.
// 2018), forward and backward, in one pass over each activation instead of five.
//
// This header has no LibTorch dependency: the kernels take contiguous NC(HW) pointers, or N(HW)C
// ones (channels-last) when the shape says so. It is
// compiled once per instruction set (kernels/*_default.cpp, *_avx2.cpp, *_avx512.cpp, each with
// its CPU_CAPABILITY) and nn/fused_norm.cpp picks the best one the CPU runs.
#pragma once
#include <cstdint>

namespace c10 {
struct BFloat16;
}

namespace gm::nn::kernels {

/// The activation after the norm: SiLU (the U-Net's), ReLU (CycleGAN's instance norm), none.
enum class GnActivation : int { SiLU = 0, ReLU = 1, None = 2 };

struct GnSiluShape {
  int64_t n = 0;       ///< batch
  int64_t c = 0;       ///< channels
  int64_t hw = 0;      ///< elements per channel (H * W)
  int64_t groups = 0;  ///< GroupNorm groups (divides c)
  float eps = 1e-5f;
  GnActivation act = GnActivation::SiLU;
  bool channels_last = false;  ///< memory is N x HW x C (NHWC) instead of N x C x HW
};

// Forward: y = act(z) (silu unless s.act says otherwise), z = (gamma * xhat + beta) * (1 + scale) +
// shift, with xhat = (x - mean_g) * rstd_g over each sample's group of c / groups channels. scale
// and shift are N x C or both null; mean and rstd (N x groups) are written for the backward pass.
// Backward: given dy, writes dx and the per-(sample, channel) sums dsum = sum_hw dz and
// dxhat = sum_hw dz * xhat (dz = dy * act'(z)); the caller forms the parameter gradients from
// them.
template <typename T>
using GnSiluForward = void (*)(const T* x, const float* gamma, const float* beta,
                               const float* scale, const float* shift, T* y, float* mean,
                               float* rstd, const GnSiluShape& s);
template <typename T>
using GnSiluBackward = void (*)(const T* dy, const T* x, const float* gamma, const float* beta,
                                const float* scale, const float* shift, const float* mean,
                                const float* rstd, T* dx, float* dsum, float* dxhat,
                                const GnSiluShape& s);

struct GnSiluKernels {
  const char* isa = "";
  GnSiluForward<float> forward_f32 = nullptr;
  GnSiluForward<c10::BFloat16> forward_bf16 = nullptr;
  GnSiluBackward<float> backward_f32 = nullptr;
  GnSiluBackward<c10::BFloat16> backward_bf16 = nullptr;
};

GnSiluKernels gn_silu_kernels_default();
GnSiluKernels gn_silu_kernels_avx2();
GnSiluKernels gn_silu_kernels_avx512();

}  // namespace gm::nn::kernels
