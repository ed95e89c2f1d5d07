// nn::reflection_pad2d equals torch::reflection_pad2d: values and input gradients, every padding
// a CycleGAN uses and odd sizes, fp64 / fp32 / bf16 (which LibTorch's lacks), double backward,
// non-contiguous input.
#include <gtest/gtest.h>

#include "genmodels/nn/reflect_pad.h"

namespace {

void check(std::vector<int64_t> shape, int64_t pad, torch::ScalarType dtype) {
  torch::manual_seed(4);
  torch::Tensor x = torch::randn(shape).to(dtype).requires_grad_(true);
  torch::Tensor y = gm::nn::reflection_pad2d(x, pad);
  torch::Tensor g = torch::randn(y.sizes()).to(dtype);
  torch::Tensor gx = torch::autograd::grad({y}, {x}, {g})[0];
  // (LibTorch 1.13 has no bf16 reflection_pad2d: the bf16 case is checked against fp32.)
  torch::Tensor xr = dtype == torch::kBFloat16 ? x.to(torch::kFloat) : x;
  torch::Tensor ref = torch::reflection_pad2d(xr, {pad, pad, pad, pad}).to(dtype);
  torch::Tensor gref = torch::autograd::grad({ref}, {x}, {g})[0];
  EXPECT_TRUE(torch::equal(y, ref)) << shape << " pad " << pad;  // copies: exact
  const double tol = dtype == torch::kBFloat16 ? 2e-2 : 1e-6;
  EXPECT_LT((gx - gref).abs().max().item<double>(), tol * (1 + gref.abs().max().item<double>()))
      << shape << " pad " << pad;
}

TEST(ReflectionPad, MatchesLibTorchValuesAndGradients) {
  for (auto dtype : {torch::kDouble, torch::kFloat, torch::kBFloat16}) {
    check({2, 3, 7, 7}, 1, dtype);
    check({2, 3, 7, 7}, 3, dtype);  // c7s1: pad 3
    check({1, 2, 4, 9}, 3, dtype);  // pad = H - 1
    check({3, 1, 2, 5}, 1, dtype);
  }
}

TEST(ReflectionPad, DoubleBackwardAndOtherLayouts) {
  torch::manual_seed(5);
  torch::Tensor x = torch::randn({2, 3, 5, 6}, torch::kDouble).requires_grad_(true);
  torch::Tensor w = torch::randn({3, 3, 3, 3}, torch::kDouble);
  // The input gradient of a padded convolution, squared: its weight gradient needs the pad's
  // backward to be differentiable.
  std::vector<torch::Tensor> grads;
  for (bool mine : {true, false}) {
    torch::Tensor wi = w.clone().requires_grad_(true);
    torch::Tensor p =
        mine ? gm::nn::reflection_pad2d(x, 1) : torch::reflection_pad2d(x, {1, 1, 1, 1});
    torch::Tensor gx =
        torch::autograd::grad({torch::conv2d(p, wi).pow(2).sum()}, {x}, {}, true, true)[0];
    grads.push_back(torch::autograd::grad({gx.pow(2).sum()}, {wi})[0]);
  }
  EXPECT_TRUE(torch::allclose(grads[0], grads[1], 1e-10, 1e-10));
  // Channels-last input takes LibTorch's path and gives the same values.
  torch::Tensor cl = x.detach().contiguous(torch::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(
      torch::equal(gm::nn::reflection_pad2d(cl, 2), torch::reflection_pad2d(cl, {2, 2, 2, 2})));
  EXPECT_THROW(gm::nn::reflection_pad2d(x, 5), c10::Error);  // pad >= H
}

}  // namespace
