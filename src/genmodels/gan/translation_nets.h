// The networks of image-to-image translation.
//
// UnetGenerator (Isola et al. 2017, pix2pix, Sec. 3.2.1 and App. 6.1.1): an encoder of stride-2
// 4x4 convolutions (LeakyReLU 0.2, norm after all but the first) down to the smallest map the size
// allows (1x1 for 256 = 2^8; 7x7 for 28 = 7 * 4, where a 3x3 bottleneck convolution follows), a
// mirrored decoder of stride-2 up-convolutions (ReLU, norm) that takes the encoder's map of the
// same size as a skip connection (concatenated), dropout 0.5 in the innermost decoder layers as the
// noise source (at test time too when test_dropout is set, as the paper does), tanh out.
//
// ResnetGenerator (Zhu et al. 2017, CycleGAN, App. 7.2, after Johnson et al. 2016): c7s1-k, d2k,
// d4k, n residual blocks R4k, u2k, uk, c7s1-out with reflection padding and instance norm.
// Up-sampling uses nn::UpConv2x (a 4x4 stride-2 transposed convolution computed on oneDNN) where
// the paper has a 3x3 fractionally strided one.
//
// PatchDiscriminator (Isola et al. 2017, Sec. 3.2.2, App. 6.1.2): L stride-2 4x4 convolutions
// (C64-C128-..., no norm on the first), one stride-1 convolution, a 1-channel stride-1 output: each
// output scores one N x N patch, N = receptive_field(L) (L = 3: the paper's 70x70).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "genmodels/nn/upconv.h"

namespace gm::gan {

enum class NormKind { Batch, Instance };
NormKind parse_norm(const std::string& name);  ///< "batch" | "instance"; throws naming the key

/// Receptive field (pixels) of a PatchGAN discriminator with `layers` stride-2 convolutions.
int64_t patch_receptive_field(int64_t layers);
/// The stride-2 layers for an image size: the largest L >= 1 whose receptive field is at most
/// half the image (70x70 patches for 256x256 images, 16x16 for 28x28).
int64_t patch_layers_for(int64_t size);

/// BatchNorm2d or InstanceNorm2d (affine, as the reference implementations).
class Norm2dImpl : public torch::nn::Module {
 public:
  Norm2dImpl(NormKind kind, int64_t channels);
  /// The norm, then ReLU when `relu` (instance norm: one fused kernel, nn/fused_norm.h).
  torch::Tensor forward(const torch::Tensor& x, bool relu = false);

 private:
  torch::nn::BatchNorm2d bn{nullptr};
  torch::nn::InstanceNorm2d in{nullptr};
};
TORCH_MODULE(Norm2d);

class ResnetBlockImpl : public torch::nn::Module {
 public:
  ResnetBlockImpl(int64_t channels, NormKind norm);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  Norm2d norm1{nullptr}, norm2{nullptr};
};
TORCH_MODULE(ResnetBlock);

struct UnetOptions {
  int64_t in_channels = 1, out_channels = 1, size = 28;
  int64_t channels = 64;       ///< first encoder width (x2 per level, capped at max_channels)
  int64_t max_channels = 512;  ///< the paper's cap
  double dropout = 0.5;        ///< in the innermost decoder layers (0 = off)
  int64_t dropout_layers = 3;  ///< how many decoder layers, innermost first (never the last)
  bool test_dropout = false;   ///< dropout in eval mode too (Isola et al.'s test protocol)
  /// Residual blocks (CycleGAN's, Johnson et al. 2016) after the bottleneck convolutions, when
  /// the smallest map is larger than 1x1: depth where the paper's 256x256 U-Net has its 2x2 and
  /// 1x1 levels, which a 28x28 image cannot reach.
  int64_t blocks = 0;
  NormKind norm = NormKind::Batch;
};

class UnetGeneratorImpl : public torch::nn::Module {
 public:
  explicit UnetGeneratorImpl(UnetOptions o);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t levels() const { return static_cast<int64_t>(downs_.size()); }

 private:
  UnetOptions o_;
  std::vector<torch::nn::Conv2d> downs_;
  std::vector<Norm2d> down_norms_;  ///< null for the first level
  /// Bottleneck when the smallest map is larger than 1x1 (28 -> 7x7): a 3x3 convolution and a
  /// 3x3 one with dilation 2, whose 7-cell receptive field spans a 7x7 map, as the paper's 1x1
  /// bottleneck spans the image.
  torch::nn::Conv2d mid_{nullptr}, mid2_{nullptr};
  std::vector<ResnetBlock> mid_blocks_;  ///< UnetOptions::blocks, after mid2_
  std::vector<nn::UpConv2x> ups_;        ///< ups_[i] produces level i's resolution (i = 0: output)
  std::vector<Norm2d> up_norms_;         ///< null for the output level
};
TORCH_MODULE(UnetGenerator);

struct ResnetOptions {
  int64_t in_channels = 1, out_channels = 1, size = 28;
  int64_t channels = 64;  ///< k of c7s1-k
  int64_t blocks = 9;     ///< residual blocks (the paper: 6 for 128x128, 9 for 256x256)
  NormKind norm = NormKind::Instance;
};

class ResnetGeneratorImpl : public torch::nn::Module {
 public:
  explicit ResnetGeneratorImpl(ResnetOptions o);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d in_{nullptr}, down1_{nullptr}, down2_{nullptr}, out_{nullptr};
  Norm2d n_in_{nullptr}, n_down1_{nullptr}, n_down2_{nullptr}, n_up1_{nullptr}, n_up2_{nullptr};
  std::vector<ResnetBlock> blocks_;
  nn::UpConv2x up1_{nullptr}, up2_{nullptr};
};
TORCH_MODULE(ResnetGenerator);

struct PatchOptions {
  int64_t in_channels = 2;
  int64_t channels = 64;
  int64_t layers = 3;  ///< stride-2 convolutions (patch_layers_for(size) by default)
  NormKind norm = NormKind::Batch;
};

class PatchDiscriminatorImpl : public torch::nn::Module {
 public:
  explicit PatchDiscriminatorImpl(PatchOptions o);
  /// N x 1 x h x w patch scores (logits / least-squares values).
  torch::Tensor forward(const torch::Tensor& x);

 private:
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<Norm2d> norms_;  ///< null where there is no norm
};
TORCH_MODULE(PatchDiscriminator);

/// Weights N(0, 0.02), biases 0, norm gains N(1, 0.02) (the reference implementations' "normal"
/// initialisation) for every convolution, up-convolution and norm in `m`.
void init_translation_weights(torch::nn::Module& m);

}  // namespace gm::gan
