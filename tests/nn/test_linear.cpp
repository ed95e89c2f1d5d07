// gm::nn::linear (row-split parallel GEMMs) equals torch::linear: outputs and all gradients, with
// 2 threads, repeated (a data race between the concurrent BLAS calls would show up here).
#include <gtest/gtest.h>

#include "genmodels/nn/linear.h"

namespace {

double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / (b.abs().max() + 1e-12)).item<double>();
}

struct ThreadsScope {
  int previous = torch::get_num_threads();
  explicit ThreadsScope(int n) { torch::set_num_threads(n); }
  ~ThreadsScope() { torch::set_num_threads(previous); }
};

TEST(Linear, MatchesTorchLinearAndItsGradientsOnTwoThreads) {
  ThreadsScope threads(2);
  for (int rep = 0; rep < 10; ++rep) {
    torch::manual_seed(rep);
    const bool with_bias = rep % 2 == 0;
    gm::nn::Linear lin(300, 211, with_bias);
    torch::Tensor x = torch::randn({5, 13, 300}, torch::requires_grad());  // 65 rows: odd split
    torch::Tensor g = torch::randn({5, 13, 211});
    torch::Tensor y = lin->forward(x);
    (y * g).sum().backward();
    torch::Tensor gx = x.grad().clone(), gw = lin->weight.grad().clone();
    torch::Tensor gb = with_bias ? lin->bias.grad().clone() : torch::Tensor();
    x.mutable_grad() = torch::Tensor();
    lin->zero_grad();
    torch::Tensor ref = torch::linear(x, lin->weight, with_bias ? lin->bias : torch::Tensor());
    (ref * g).sum().backward();
    ASSERT_EQ(y.sizes(), ref.sizes());
    EXPECT_LT(rel_err(y, ref), 1e-5) << rep;
    EXPECT_LT(rel_err(gx, x.grad()), 1e-5) << rep;
    EXPECT_LT(rel_err(gw, lin->weight.grad()), 1e-5) << rep;
    if (with_bias) {
      EXPECT_LT(rel_err(gb, lin->bias.grad()), 1e-5) << rep;
    }
  }
}

TEST(Linear, ParallelMmSplitsRowsExactly) {
  ThreadsScope threads(2);
  torch::manual_seed(3);
  torch::Tensor a = torch::randn({129, 257}), b = torch::randn({257, 64});
  EXPECT_LT(rel_err(gm::nn::parallel_mm(a, b), torch::mm(a, b)), 1e-6);
  EXPECT_LT(
      rel_err(gm::nn::parallel_mm(b.t(), a.t().contiguous().t().t()), torch::mm(b.t(), a.t())),
      1e-6);  // transposed (strided) operands
}

TEST(Linear, KeepsTorchLinearNamesAndInitialisation) {
  torch::manual_seed(1);
  gm::nn::Linear lin(7, 3);
  torch::manual_seed(1);
  torch::nn::Linear ref(7, 3);
  EXPECT_TRUE(torch::equal(lin->weight, ref->weight));
  EXPECT_TRUE(torch::equal(lin->bias, ref->bias));
  EXPECT_EQ(lin->named_parameters().keys(), ref->named_parameters().keys());
}

}  // namespace
