// UpConv2x equals ConvTranspose2d(k 4, s 2, p 1): outputs and all gradients, odd sizes, no bias.
#include <gtest/gtest.h>

#include "genmodels/nn/layout.h"
#include "genmodels/nn/upconv.h"

namespace {

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double tol) {
  ASSERT_EQ(a.sizes(), b.sizes());
  EXPECT_LT((a - b).abs().max().item<double>(), tol * (1 + b.abs().max().item<double>()));
}

void check(int64_t cin, int64_t cout, int64_t h, int64_t w, bool bias) {
  torch::manual_seed(5);
  gm::nn::UpConv2x up(cin, cout, bias);
  torch::Tensor x = torch::randn({3, cin, h, w}, torch::requires_grad());
  torch::Tensor g = torch::randn({3, cout, 2 * h, 2 * w});
  torch::Tensor y = up->forward(x);
  (y * g).sum().backward();
  torch::Tensor gx = x.grad().clone(), gw = up->weight.grad().clone();
  torch::Tensor gb = bias ? up->bias.grad().clone() : torch::Tensor();
  x.mutable_grad() = torch::Tensor();
  up->zero_grad();
  torch::Tensor ref = torch::conv_transpose2d(x, up->weight, bias ? up->bias : torch::Tensor(),
                                              /*stride=*/2, /*padding=*/1);
  (ref * g).sum().backward();
  expect_close(y, ref, 1e-5);
  expect_close(gx, x.grad(), 1e-5);
  expect_close(gw, up->weight.grad(), 1e-5);
  if (bias) expect_close(gb, up->bias.grad(), 1e-5);
}

TEST(UpConv2x, MatchesConvTranspose2dAndItsGradients) {
  check(4, 3, 5, 7, true);
  check(2, 1, 1, 1, true);
  check(3, 2, 6, 4, false);
}

TEST(UpConv2x, ChannelsLastInputAndDoubleBackward) {
  torch::manual_seed(3);
  gm::nn::UpConv2x up(5, 3);
  torch::Tensor x = torch::randn({2, 5, 4, 6}).contiguous(torch::MemoryFormat::ChannelsLast);
  torch::Tensor ref = torch::conv_transpose2d(x, up->weight, up->bias, 2, 1);
  expect_close(up->forward(x), ref, 1e-5);
  // A channels-last input is interleaved in that layout: the output is channels-last too, and
  // the input gradient equals the reference's. channels_last = true does the same for NCHW x.
  EXPECT_TRUE(gm::nn::is_channels_last(up->forward(x)));
  EXPECT_FALSE(gm::nn::is_channels_last(up->forward(x.contiguous())));
  {
    torch::Tensor gy = torch::randn({2, 3, 8, 12});
    torch::Tensor xa = x.detach().requires_grad_(true), xb = x.detach().requires_grad_(true);
    (up->forward(xa) * gy).sum().backward();
    (torch::conv_transpose2d(xb, up->weight, up->bias, 2, 1) * gy).sum().backward();
    expect_close(xa.grad(), xb.grad(), 1e-5);
    gm::nn::UpConv2x nhwc(5, 3);
    nhwc->weight.detach().copy_(up->weight);
    nhwc->bias.detach().copy_(up->bias);
    nhwc->channels_last = true;
    torch::Tensor out = nhwc->forward(x.contiguous());
    EXPECT_TRUE(gm::nn::is_channels_last(out));
    expect_close(out, ref, 1e-5);
    up->zero_grad();
  }
  // The input gradient is a function of the weight: differentiate it again (a gradient penalty
  // through a generator) and compare the weight's second-order gradient.
  torch::Tensor g0 = torch::randn({2, 3, 8, 12}), g1 = torch::randn({2, 5, 4, 6});
  std::vector<torch::Tensor> gw;
  for (bool mine : {true, false}) {
    torch::Tensor xi = x.detach().requires_grad_(true);
    torch::Tensor y =
        mine ? up->forward(xi) : torch::conv_transpose2d(xi, up->weight, up->bias, 2, 1);
    torch::Tensor gx = torch::autograd::grad({(y * g0).sum()}, {xi}, {}, true, true)[0];
    up->zero_grad();
    (gx * g1).sum().backward();
    gw.push_back(up->weight.grad().clone());
  }
  expect_close(gw[0], gw[1], 1e-5);
  EXPECT_GT(gw[1].abs().max().item<double>(), 0);
}

TEST(UpConv2x, KeepsConvTransposeParameterNamesAndLayout) {
  torch::manual_seed(1);
  gm::nn::UpConv2x up(6, 2);
  torch::manual_seed(1);
  torch::nn::ConvTranspose2d ref(torch::nn::ConvTranspose2dOptions(6, 2, 4).stride(2).padding(1));
  auto a = up->named_parameters(), b = ref->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& p : b) {
    ASSERT_TRUE(a.contains(p.key())) << p.key();
    EXPECT_TRUE(torch::equal(a[p.key()], p.value())) << p.key();  // same default init
  }
  EXPECT_TRUE(up->named_buffers().is_empty());
}

}  // namespace
