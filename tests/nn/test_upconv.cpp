// UpConv2x equals ConvTranspose2d(k 4, s 2, p 1): outputs and all gradients, odd sizes, no bias.
#include <gtest/gtest.h>

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
