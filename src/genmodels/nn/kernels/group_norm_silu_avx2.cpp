// GroupNorm + SiLU kernels built for the avx2 instruction set (flags in CMakeLists.txt).
#define GM_KERNEL_TABLE gn_silu_kernels_avx2
#define GM_KERNEL_ISA "avx2"
#include "genmodels/nn/kernels/group_norm_silu_impl.h"
