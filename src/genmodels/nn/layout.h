// Memory layout of convolutional models on CPU. oneDNN's convolutions at this project's widths
// run 1.3-2x faster on channels-last (NHWC) activations than on NCHW, and LibTorch picks a
// convolution's layout from the strides of its input and weight, so a model opts in by keeping
// its convolution weights channels-last and giving its convolution inputs NHWC strides.
#pragma once
#include <torch/torch.h>

#include <string>

namespace gm::nn {

/// x with channels-last strides, also when it has one channel (where x.contiguous(ChannelsLast)
/// keeps the NCHW strides and a convolution would choose NCHW); other tensors unchanged.
torch::Tensor strictly_channels_last(const torch::Tensor& x);

/// Whether a 4-D tensor is laid out channels-last and not also NCHW (a weight with one input
/// channel and 1x1 kernel is both, so test a weight whose layout is unambiguous).
bool is_channels_last(const torch::Tensor& t);

/// Re-lays every 4-D parameter of m (convolution weights) channels-last or NCHW in place (values
/// unchanged; set_data keeps the parameters' identity, so optimizers still hold them).
void set_conv_layout(torch::nn::Module& m, bool channels_last);

/// model.memory_format: "channels_last", "nchw", or "auto" (channels-last on CPU devices).
bool channels_last_for(const std::string& memory_format, const torch::Device& device);

/// The help text and choices of a model.memory_format key.
inline constexpr const char* kMemoryFormatHelp =
    "convolution activation layout: channels_last (NHWC: oneDNN's convolutions run 1.3-2x "
    "faster on CPU), nchw, or auto (channels_last on CPU, nchw elsewhere)";

}  // namespace gm::nn
