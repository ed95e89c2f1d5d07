// GroupNorm + SiLU kernels built for the default instruction set (flags in CMakeLists.txt).
#define GM_KERNEL_TABLE gn_silu_kernels_default
#define GM_KERNEL_ISA "default"
#include "genmodels/nn/kernels/group_norm_silu_impl.h"
