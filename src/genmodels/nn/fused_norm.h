// GroupNorm + optional per-sample scale/shift + SiLU as one fused CPU operation, the U-Net's most
// frequent non-convolution sequence (every residual block runs it twice, scale-shift norm once).
//
//   y = silu((GroupNorm(x) * weight + bias) * (1 + scale) + shift)
//
// On CPU tensors in NCHW (contiguous) or channels-last layout, fp32 or bf16, this runs the fused
// kernels of nn/kernels/ (ATen's vectorised types for the CPU's best instruction set, one pass per
// group, or per sample in channels-last) with their own autograd function, and returns y (and dx)
// in x's layout; everywhere else (CUDA, other strides, other dtypes) it runs the same formula with
// LibTorch's ops. Both compute in fp32 and return x's dtype.
#pragma once
#include <torch/torch.h>

namespace gm::nn {

/// The activation that follows the norm.
enum class NormActivation { SiLU, ReLU, None };

/// y = act((GroupNorm(x) * weight + bias) * (1 + scale) + shift), fused like group_norm_silu.
/// Undefined weight / bias mean 1 / 0 (a norm without affine parameters); groups = C is instance
/// norm (Ulyanov et al. 2016), CycleGAN's, with ReLU or no activation after it.
torch::Tensor group_norm_act(const torch::Tensor& x, int64_t groups, const torch::Tensor& weight,
                             const torch::Tensor& bias, double eps, NormActivation act,
                             const torch::Tensor& scale = {}, const torch::Tensor& shift = {});
torch::Tensor group_norm_act_reference(const torch::Tensor& x, int64_t groups,
                                       const torch::Tensor& weight, const torch::Tensor& bias,
                                       double eps, NormActivation act,
                                       const torch::Tensor& scale = {},
                                       const torch::Tensor& shift = {});

/// The fused op. scale and shift are N x C (or N x C x 1 x 1), both given or both undefined.
/// Double backward (create_graph) is supported through the reference ops.
torch::Tensor group_norm_silu(const torch::Tensor& x, int64_t groups, const torch::Tensor& weight,
                              const torch::Tensor& bias, double eps,
                              const torch::Tensor& scale = {}, const torch::Tensor& shift = {});

/// The same formula with LibTorch's unfused ops: the definition the fused kernels are tested
/// against, and the path for devices and layouts they do not cover.
torch::Tensor group_norm_silu_reference(const torch::Tensor& x, int64_t groups,
                                        const torch::Tensor& weight, const torch::Tensor& bias,
                                        double eps, const torch::Tensor& scale = {},
                                        const torch::Tensor& shift = {});

/// Module form over a torch::nn::GroupNorm's parameters.
torch::Tensor group_norm_silu(torch::nn::GroupNorm& norm, const torch::Tensor& x,
                              const torch::Tensor& scale = {}, const torch::Tensor& shift = {});

/// Whether group_norm_silu may use the fused kernels (default on; GENMODELS_FUSED_KERNELS=0 in
/// the environment turns them off, for A/B benchmarks).
bool fused_kernels_enabled();
void set_fused_kernels_enabled(bool on);
/// The instruction set the fused kernels were built for and chosen at run time
/// ("avx512", "avx2" or "default").
const char* fused_kernels_isa();

}  // namespace gm::nn
