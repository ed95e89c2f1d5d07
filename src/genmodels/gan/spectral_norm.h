// Spectral normalisation (Miyato et al. 2018, "Spectral Normalization for Generative Adversarial
// Networks", Alg. 1): W_SN = W / sigma(W), with the largest singular value sigma estimated by power
// iteration on the weight reshaped to (out, in * k * k). The singular vectors u, v are buffers
// (saved in checkpoints, so resumed runs continue the same iteration); each training forward
// refines them by `iterations` steps, evaluation reuses them. LibTorch's C++ frontend has no
// spectral_norm, so the layers here own their weight and apply it themselves.
#pragma once
#include <torch/torch.h>

namespace gm::gan {

/// sigma(W) = u^T W v after `iterations` power steps that update u and v in place (under no_grad);
/// differentiable in `weight` (Miyato et al. 2018, Alg. 1; u and v are constants of the graph).
torch::Tensor spectral_sigma(const torch::Tensor& weight, torch::Tensor& u, torch::Tensor& v,
                             int64_t iterations);

/// Conv2d whose weight is spectrally normalised when `sn` is set (parameters "weight", "bias";
/// buffers "u", "v").
class SNConv2dImpl : public torch::nn::Module {
 public:
  SNConv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, bool sn);
  torch::Tensor forward(const torch::Tensor& x);
  /// The weight as applied: W / sigma(W) with the current u, v (no power step) or W.
  torch::Tensor effective_weight();
  torch::Tensor weight, bias, u, v;
  int64_t stride, padding;
  bool sn;
};
TORCH_MODULE(SNConv2d);

/// Linear with the same option.
class SNLinearImpl : public torch::nn::Module {
 public:
  SNLinearImpl(int64_t in, int64_t out, bool sn, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor effective_weight();
  torch::Tensor weight, bias, u, v;
  bool sn;
};
TORCH_MODULE(SNLinear);

}  // namespace gm::gan
