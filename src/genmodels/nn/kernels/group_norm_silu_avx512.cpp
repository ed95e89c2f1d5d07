// GroupNorm + SiLU kernels built for the avx512 instruction set (flags in CMakeLists.txt).
#define GM_KERNEL_TABLE gn_silu_kernels_avx512
#define GM_KERNEL_ISA "avx512"
#include "genmodels/nn/kernels/group_norm_silu_impl.h"
