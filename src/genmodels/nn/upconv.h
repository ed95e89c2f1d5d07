// A transposed convolution with kernel 4, stride 2 and padding 1 (the DCGAN / VAE decoder
// upsampler) computed as its four output phases: one 2x2 convolution into 4x the channels and an
// interleaving gather (the sub-pixel view of a strided transposed convolution: Shi et al. 2016,
// "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel CNN", Sec. 2.2;
// Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").
//
// Why: LibTorch 1.13 runs ConvTranspose2d on the CPU through its im2col fallback
// (slow_conv_transpose2d, no oneDNN path, no bf16 speed-up), while ordinary convolutions run on
// oneDNN. For a 64 -> 32 channel 7x7 -> 14x14 layer at batch 128 forward + backward cost 35.6 ms
// as ConvTranspose2d and 18.7 ms (fp32) / 9.7 ms (bf16) as a 3x3 convolution + pixel shuffle, this
// layer's first form. The 2x2 form does the transposed convolution's own multiply-adds (the 3x3
// one did 2.25x as many, a zero tap in five of each phase's nine) plus one border row and column:
// forward + backward of pix2pix's 256 -> 64 layer at 7x7, batch 32, 14.5 -> 7.2 ms.
//
// The parameters are a ConvTranspose2d's, with its names, layout (in, out, 4, 4) and default
// initialisation, so checkpoints and twins see a ConvTranspose2d; outputs and gradients equal
// torch::conv_transpose2d's to float rounding (tests/nn/test_upconv.cpp).
//
// Output pixel 2m + a (a = 0, 1) of a transposed convolution with stride 2 and padding 1 reads
// inputs m + d with kernel tap k = a + 1 - 2d: phase 0 uses d = -1, 0 (taps 3, 1), phase 1 uses
// d = 0, 1 (taps 2, 0). A 2x2 convolution over the input padded by one reads inputs p - 1 and p at
// output p: phase a's pixel m is its output p = m + a.
#pragma once
#include <torch/torch.h>

namespace gm::nn {

class UpConv2xImpl : public torch::nn::Module {
 public:
  UpConv2xImpl(int64_t in_channels, int64_t out_channels, bool bias = true);
  /// N x in x H x W -> N x out x 2H x 2W.
  torch::Tensor forward(const torch::Tensor& x);
  /// The phases' 2x2 kernels, (4 out) x in x 2 x 2, channel 4c + 2a + b for output channel c and
  /// phase (a, b); differentiable in `weight`.
  torch::Tensor phase_weight() const;

  torch::Tensor weight, bias;  ///< as ConvTranspose2d: in x out x 4 x 4, out
  /// Run channels-last: the input is given NHWC strides, and the output is NHWC. A channels-last
  /// input runs NHWC (and gives NHWC) whatever this says.
  bool channels_last = false;

 private:
  torch::Tensor taps_;  ///< the 4 kernel taps, phase-major, offset-minor
};
TORCH_MODULE(UpConv2x);

/// The interleaving of UpConv2x: N x 4C x (H + 1) x (W + 1) phase maps -> N x C x 2H x 2W with
/// out[n, c, 2m + a, 2j + b] = y[n, 4c + 2a + b, m + a, j + b]. One strided copy each way (an
/// autograd function; LibTorch's as_strided backward would go through its generic path). A
/// channels-last y gives a channels-last output, interleaved in that layout.
torch::Tensor interleave_phases(const torch::Tensor& y);

}  // namespace gm::nn
