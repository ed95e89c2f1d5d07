// A transposed convolution with kernel 4, stride 2 and padding 1 (the DCGAN / VAE decoder
// upsampler) computed as a 3x3 convolution into 4x the channels followed by a pixel shuffle
// (the sub-pixel view of a strided transposed convolution: Shi et al. 2016, "Real-Time Single
// Image and Video Super-Resolution Using an Efficient Sub-Pixel CNN", Sec. 2.2; Odena et al.
// 2016, "Deconvolution and Checkerboard Artifacts").
//
// Why: LibTorch 1.13 runs ConvTranspose2d on the CPU through its im2col fallback
// (slow_conv_transpose2d, no oneDNN path, no bf16 speed-up), while the 3x3 convolution runs on
// oneDNN. For a 64 -> 32 channel 7x7 -> 14x14 layer at batch 128 forward + backward costs 35.6 ms
// as ConvTranspose2d and 18.7 ms (fp32) / 9.7 ms (bf16) here, 2.25x the multiply-adds
// notwithstanding.
//
// The parameters are a ConvTranspose2d's, with its names, layout (in, out, 4, 4) and default
// initialisation, so checkpoints and twins see a ConvTranspose2d; outputs and gradients equal
// torch::conv_transpose2d's to float rounding (tests/nn/test_upconv.cpp).
//
// Output pixel 2m + a (a = 0, 1) of a transposed convolution with stride 2 and padding 1 reads
// inputs m + d with kernel tap k = a + 1 - 2d: phase 0 uses d = -1, 0 (taps 3, 1), phase 1 uses
// d = 0, 1 (taps 2, 0). One 3x3 window around m covers both phases; the unused tap is zero.
#pragma once
#include <torch/torch.h>

namespace gm::nn {

class UpConv2xImpl : public torch::nn::Module {
 public:
  UpConv2xImpl(int64_t in_channels, int64_t out_channels, bool bias = true);
  /// N x in x H x W -> N x out x 2H x 2W.
  torch::Tensor forward(const torch::Tensor& x);
  /// The equivalent 3x3 kernel, (4 out) x in x 3 x 3, channel 4c + 2a + b for output channel c and
  /// phase (a, b) as pixel_shuffle expects; differentiable in `weight`.
  torch::Tensor subpixel_weight() const;

  torch::Tensor weight, bias;  ///< as ConvTranspose2d: in x out x 4 x 4, out

 private:
  torch::Tensor taps_;  ///< the 6 kernel taps (phase-major, offset-minor) into the padded kernel
};
TORCH_MODULE(UpConv2x);

}  // namespace gm::nn
