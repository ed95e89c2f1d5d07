// A fully connected layer whose fp32 CPU matrix products run on every LibTorch thread.
//
// Why: BLAS runs single-threaded here (core/runtime.cpp: OpenBLAS's own thread pool next to
// LibTorch's OpenMP threads oversubscribes the cores), so torch::linear's fp32 GEMMs use one core
// of two; in the conv VAE they were half of the train step. Each product of forward and backward
// (y = x W^T, dx = dy W, dW = dy^T x) is split by rows of its output into one block per LibTorch
// thread, and each block is one single-threaded BLAS call. Same arithmetic per element, so
// results equal torch::linear's to float rounding (tests/nn/test_linear.cpp).
// Under autocast, for other dtypes, other devices or small products it is plain torch::linear
// (bf16 products already go to multi-threaded oneDNN).
#pragma once
#include <torch/torch.h>

namespace gm::nn {

/// x (... x in) W^T (out x in) + b (out).
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight,
                     const torch::Tensor& bias = {});

/// A @ B for 2-D fp32 CPU tensors, output rows split across LibTorch's threads (no autograd).
torch::Tensor parallel_mm(const torch::Tensor& a, const torch::Tensor& b);

/// torch::nn::Linear with the same parameter names, layout and initialisation, computed by
/// gm::nn::linear.
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;  ///< out x in, out
};
TORCH_MODULE(Linear);

}  // namespace gm::nn
