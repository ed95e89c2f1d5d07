#include "genmodels/nn/upconv.h"

namespace gm::nn {

UpConv2xImpl::UpConv2xImpl(int64_t in_channels, int64_t out_channels, bool with_bias) {
  // ConvTranspose2d's own initialisation, so a seed gives the same weights as before.
  torch::nn::ConvTranspose2d ref(torch::nn::ConvTranspose2dOptions(in_channels, out_channels, 4)
                                     .stride(2)
                                     .padding(1)
                                     .bias(with_bias));
  weight = register_parameter("weight", ref->weight.detach().clone());
  if (with_bias) bias = register_parameter("bias", ref->bias.detach().clone());
  // Tap k = a + 1 - 2d for phase a and offset d = -1, 0, 1; out-of-range taps read index 4, the
  // zero row added by padding the kernel.
  // (Not a buffer: the state dict stays a ConvTranspose2d's.)
  taps_ = torch::tensor({3, 1, 4, 4, 2, 0}, torch::kLong);
}

torch::Tensor UpConv2xImpl::subpixel_weight() const {
  const int64_t cin = weight.size(0), cout = weight.size(1);
  torch::Tensor padded = torch::constant_pad_nd(weight, {0, 1, 0, 1});  // in x out x 5 x 5
  const torch::Tensor taps = taps_.to(weight.device());
  torch::Tensor w = padded.index_select(2, taps).index_select(3, taps);  // in x out x 6 x 6
  // (in, out, a, dy, b, dx) -> (out, a, b, in, dy, dx)
  return w.view({cin, cout, 2, 3, 2, 3}).permute({1, 2, 4, 0, 3, 5}).reshape({4 * cout, cin, 3, 3});
}

torch::Tensor UpConv2xImpl::forward(const torch::Tensor& x) {
  torch::Tensor b = bias.defined() ? bias.repeat_interleave(4) : torch::Tensor();
  torch::Tensor y = torch::conv2d(x, subpixel_weight(), b, /*stride=*/1, /*padding=*/1);
  return torch::pixel_shuffle(y, 2);
}

}  // namespace gm::nn
