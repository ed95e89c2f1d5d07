// The GAN networks. Images: a DCGAN generator and discriminator (Radford et al. 2016) for any
// square size n * 2^k (28 = 7 * 4, 32 = 4 * 8, 64 = 4 * 16): G projects z to an s0 x s0 map and
// upsamples k times with stride-2 4x4 transposed convolutions (nn::UpConv2x), BatchNorm + ReLU,
// tanh out; D downsamples k times with stride-2 4x4 convolutions and LeakyReLU(0.2), then pools.
// Class-conditional: conditional BatchNorm in G (per-class gain and bias, de Vries et al. 2017 /
// Miyato & Koyama 2018 Sec. 4) and a projection discriminator (Miyato & Koyama 2018 eq. 3:
// D(x, y) = psi(phi(x)) + embed(y)^T phi(x)). Vectors (2-D toys): MLPs with the same heads.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "genmodels/gan/spectral_norm.h"
#include "genmodels/nn/upconv.h"

namespace gm::gan {

struct NetOptions {
  std::vector<int64_t> shape;  ///< one example: {C, H, W} or {D}
  int64_t latent = 64;         ///< z dimensions
  int64_t num_classes = 0;     ///< > 0: class-conditional G and projection D
  int64_t g_channels = 64;     ///< G width at the full resolution (doubles per level down)
  int64_t d_channels = 64;     ///< D width at the first level (doubles per level)
  int64_t mlp_hidden = 128;    ///< vectors: MLP width
  int64_t mlp_depth = 3;       ///< vectors: hidden layers
  bool spectral_norm = false;  ///< spectral normalisation of every D layer
  /// Images: D's convolutions and G's upsamplers channels-last (NHWC weights and activations;
  /// G's output and D's flattened features are NCHW-ordered as before). Same values as NCHW to
  /// float rounding.
  bool channels_last = false;
};

/// Upsampling levels k and base size s0 of a square image size (s0 in 3..7 or 4 for powers of
/// two); throws gm::Error naming the size and a size that works otherwise.
std::pair<int64_t, int64_t> image_levels(int64_t size);

/// LeakyReLU with LibTorch's values and first derivatives, for networks whose input gradient is
/// itself differentiated (a gradient penalty, R1): its double backward skips the zero second
/// derivative that torch::leaky_relu sends back through the whole forward pass.
torch::Tensor leaky_relu_for_penalty(const torch::Tensor& x, double negative_slope);

/// BatchNorm whose gain and bias come from the class (conditional) or are plain affine.
class CondBatchNormImpl : public torch::nn::Module {
 public:
  CondBatchNormImpl(int64_t channels, int64_t num_classes, bool spatial);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& y);

 private:
  torch::nn::BatchNorm2d bn2d{nullptr};
  torch::nn::BatchNorm1d bn1d{nullptr};
  torch::nn::Embedding gain{nullptr}, shift{nullptr};
};
TORCH_MODULE(CondBatchNorm);

class GeneratorImpl : public torch::nn::Module {
 public:
  explicit GeneratorImpl(NetOptions o);
  /// z: N x latent, y: N int64 labels (conditional) or undefined -> N x shape in [-1, 1] (images)
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& y);
  const NetOptions& options() const { return o_; }

 private:
  NetOptions o_;
  int64_t s0_ = 0, c0_ = 0;
  torch::nn::Linear project{nullptr};
  std::vector<CondBatchNorm> norms_;
  std::vector<nn::UpConv2x> ups_;
  std::vector<torch::nn::Linear> hidden_;
  torch::nn::Linear out_{nullptr};
};
TORCH_MODULE(Generator);

class DiscriminatorImpl : public torch::nn::Module {
 public:
  explicit DiscriminatorImpl(NetOptions o);
  /// Raw scores N (logits for the non-saturating loss, critic values for Wasserstein).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& y);

 private:
  NetOptions o_;
  std::vector<SNConv2d> convs_;
  std::vector<SNLinear> hidden_;
  SNLinear head{nullptr};
  torch::nn::Embedding embed{nullptr};  ///< projection (conditional)
};
TORCH_MODULE(Discriminator);

}  // namespace gm::gan
