#include "genmodels/nn/upconv.h"

#include <torch/csrc/autograd/custom_function.h>

#include "genmodels/nn/layout.h"

namespace gm::nn {

namespace {

// The phases of a (N, 4C, H + 1, W + 1) contiguous tensor as an (N, C, H, 2, W, 2) view: element
// (n, c, m, a, j, b) is y[n, 4c + 2a + b, m + a, j + b].
torch::Tensor phase_view(const torch::Tensor& y) {
  const int64_t n = y.size(0), c = y.size(1) / 4, h1 = y.size(2), w1 = y.size(3);
  const int64_t plane = h1 * w1;
  return y.as_strided({n, c, h1 - 1, 2, w1 - 1, 2},
                      {4 * c * plane, 4 * plane, w1, 2 * plane + w1, 1, plane + 1});
}

// The same view of channels-last memory, given as its (N, H + 1, W + 1, 4C) contiguous form:
// element (n, m, a, j, b, c) is y[n, 4c + 2a + b, m + a, j + b], ordered as the NHWC output's
// (n, 2m + a, 2j + b, c).
torch::Tensor phase_view_nhwc(const torch::Tensor& m) {
  const int64_t n = m.size(0), h1 = m.size(1), w1 = m.size(2), c4 = m.size(3), c = c4 / 4;
  return m.as_strided({n, h1 - 1, 2, w1 - 1, 2, c},
                      {h1 * w1 * c4, w1 * c4, w1 * c4 + 2, c4, c4 + 1, 4});
}

struct InterleavePhases : torch::autograd::Function<InterleavePhases> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& y) {
    ctx->saved_data["sizes"] = y.sizes().vec();
    // A channels-last phase map (the 2x2 convolution of a channels-last input) gives a
    // channels-last output, without reordering either.
    const bool nhwc = is_channels_last(y);
    ctx->saved_data["nhwc"] = nhwc;
    if (nhwc) {
      const torch::Tensor v = phase_view_nhwc(y.permute({0, 2, 3, 1}).contiguous());
      const int64_t n = v.size(0), h = v.size(1), w = v.size(3), c = v.size(5);
      torch::Tensor out = torch::empty({n, h, 2, w, 2, c}, y.options());
      out.copy_(v);
      return out.view({n, 2 * h, 2 * w, c}).permute({0, 3, 1, 2});
    }
    const torch::Tensor v = phase_view(y.contiguous());
    const int64_t n = v.size(0), c = v.size(1), h = v.size(2), w = v.size(4);
    torch::Tensor out = torch::empty({n, c, h, 2, w, 2}, y.options());
    out.copy_(v);
    return out.view({n, c, 2 * h, 2 * w});
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto sizes = ctx->saved_data["sizes"].toIntVector();
    const torch::Tensor& g = grads[0];
    // Each phase-map entry feeds one output pixel, except the border row and column of each phase
    // that no output reads (they stay zero).
    if (ctx->saved_data["nhwc"].toBool()) {
      torch::Tensor gm = torch::zeros({sizes[0], sizes[2], sizes[3], sizes[1]}, g.options());
      phase_view_nhwc(gm).copy_(
          g.permute({0, 2, 3, 1})
              .contiguous()
              .view({sizes[0], sizes[2] - 1, 2, sizes[3] - 1, 2, sizes[1] / 4}));
      return {gm.permute({0, 3, 1, 2})};
    }
    torch::Tensor gy = torch::zeros(sizes, g.options());
    phase_view(gy).copy_(
        g.contiguous().view({sizes[0], sizes[1] / 4, sizes[2] - 1, 2, sizes[3] - 1, 2}));
    return {gy};
  }
};

}  // namespace

torch::Tensor interleave_phases(const torch::Tensor& y) {
  TORCH_CHECK(y.dim() == 4 && y.size(1) % 4 == 0 && y.size(2) >= 2 && y.size(3) >= 2,
              "interleave_phases: expected N x 4C x (H + 1) x (W + 1), got ", y.sizes());
  return InterleavePhases::apply(y);
}

UpConv2xImpl::UpConv2xImpl(int64_t in_channels, int64_t out_channels, bool with_bias) {
  // ConvTranspose2d's own initialisation, so a seed gives the same weights as before.
  torch::nn::ConvTranspose2d ref(torch::nn::ConvTranspose2dOptions(in_channels, out_channels, 4)
                                     .stride(2)
                                     .padding(1)
                                     .bias(with_bias));
  weight = register_parameter("weight", ref->weight.detach().clone());
  if (with_bias) bias = register_parameter("bias", ref->bias.detach().clone());
  // Tap k = a + 1 - 2d for phase a and its offsets d (phase 0: -1, 0; phase 1: 0, 1).
  // (Not a buffer: the state dict stays a ConvTranspose2d's.)
  taps_ = torch::tensor({3, 1, 2, 0}, torch::kLong);
}

torch::Tensor UpConv2xImpl::phase_weight() const {
  const int64_t cin = weight.size(0), cout = weight.size(1);
  const torch::Tensor taps = taps_.to(weight.device());
  torch::Tensor w = weight.index_select(2, taps).index_select(3, taps);  // in x out x 4 x 4
  // (in, out, a, dy, b, dx) -> (out, a, b, in, dy, dx)
  return w.view({cin, cout, 2, 2, 2, 2}).permute({1, 2, 4, 0, 3, 5}).reshape({4 * cout, cin, 2, 2});
}

torch::Tensor UpConv2xImpl::forward(const torch::Tensor& x) {
  torch::Tensor b = bias.defined() ? bias.repeat_interleave(4) : torch::Tensor();
  const torch::Tensor in = channels_last ? strictly_channels_last(x) : x;
  return interleave_phases(torch::conv2d(in, phase_weight(), b, /*stride=*/1, /*padding=*/1));
}

}  // namespace gm::nn
