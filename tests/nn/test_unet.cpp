// U-Net and TimeMLP: shapes, zero-initialised output, gradient flow, the sinusoidal embedding's
// closed form (Vaswani et al. 2017 Sec. 3.5), parameter count and (disabled) timing.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <iostream>

#include "genmodels/core/error.h"
#include "genmodels/nn/layout.h"
#include "genmodels/nn/unet.h"
#include "test_util.h"

namespace {

using gm::nn::UNet;
using gm::nn::UNetOptions;

UNetOptions small_options(int64_t num_classes = 0) {
  UNetOptions o;
  o.in_channels = 1;
  o.out_channels = 1;
  o.base_channels = 16;
  o.channel_mult = {1, 2, 2};
  o.num_res_blocks = 1;
  o.attention_levels = {1, 2};
  o.num_heads = 2;
  o.groups = 8;
  o.num_classes = num_classes;
  return o;
}

int64_t count_parameters(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

TEST(TimestepEmbedding, MatchesClosedForm) {
  auto t = torch::tensor({0.0f, 1.5f, 999.0f});
  for (int64_t dim : {6, 7}) {
    auto e = gm::nn::timestep_embedding(t, dim);
    ASSERT_EQ(e.size(0), 3);
    ASSERT_EQ(e.size(1), dim);
    const int64_t half = dim / 2;
    for (int64_t n = 0; n < 3; ++n) {
      const double tn = t[n].item<double>();
      for (int64_t i = 0; i < half; ++i) {
        const double w = std::exp(-std::log(10000.0) * i / half);
        EXPECT_NEAR(e[n][i].item<double>(), std::cos(tn * w), 2e-4);
        EXPECT_NEAR(e[n][half + i].item<double>(), std::sin(tn * w), 2e-4);
      }
      if (dim % 2 == 1) {
        EXPECT_EQ(e[n][dim - 1].item<double>(), 0.0);
      }
    }
  }
}

TEST(UNet, OutputShapes28And32ConditionalAndNot) {
  torch::manual_seed(0);
  for (int64_t classes : {0, 10}) {
    auto o = small_options(classes);
    o.out_channels = 2;
    UNet net(o);
    for (int64_t hw : {28, 32}) {
      auto x = torch::randn({3, 1, hw, hw});
      auto t = torch::tensor({0.0f, 10.5f, 999.0f});
      torch::Tensor y;
      if (classes > 0) y = torch::tensor({0, 9, 10}, torch::kLong);  // 10 = null class
      auto out = net(x, t, y);
      EXPECT_EQ(out.sizes(), (std::vector<int64_t>{3, 2, hw, hw}));
    }
  }
  // 3-channel 32x32 input
  auto o = small_options();
  o.in_channels = o.out_channels = 3;
  UNet net(o);
  EXPECT_EQ(net(torch::randn({2, 3, 32, 32}), torch::tensor({1.0f, 2.0f})).sizes(),
            (std::vector<int64_t>{2, 3, 32, 32}));
}

TEST(UNet, DefaultConfigShapeAndParameterCount) {
  torch::manual_seed(0);
  UNet net(UNetOptions{});
  const int64_t n = count_parameters(*net);
  std::cout << "[ UNet default (base 64, mult {1,2,2}, 2 res blocks, attn level 2) params: " << n
            << " ]\n";
  // improved-diffusion-sized model: a few million parameters
  EXPECT_GT(n, 3'000'000);
  EXPECT_LT(n, 12'000'000);
  auto out = net(torch::randn({2, 1, 28, 28}), torch::tensor({5.0f, 500.0f}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 1, 28, 28}));
}

TEST(UNet, ZeroInitialisedOutput) {
  torch::manual_seed(1);
  UNet net(small_options(3));
  auto out = net(torch::randn({4, 1, 28, 28}), torch::tensor({0.0f, 1.0f, 2.0f, 3.0f}),
                 torch::tensor({0, 1, 2, 3}, torch::kLong));
  EXPECT_EQ(out.abs().max().item<float>(), 0.0f);
}

TEST(UNet, GradientsReachEveryParameter) {
  torch::manual_seed(2);
  UNet net(small_options(3));
  {
    torch::NoGradGuard no_grad;  // undo the zero inits so every path carries gradient
    for (auto& p : net->parameters()) p.add_(torch::randn_like(p) * 0.05);
  }
  auto x = torch::randn({4, 1, 16, 16});
  auto out = net(x, torch::tensor({0.0f, 100.0f, 500.5f, 999.0f}),
                 torch::tensor({0, 1, 2, 3}, torch::kLong));
  out.square().mean().backward();
  for (const auto& kv : net->named_parameters()) {
    ASSERT_TRUE(kv.value().grad().defined()) << kv.key();
    EXPECT_GT(kv.value().grad().abs().sum().item<double>(), 0.0) << kv.key();
  }
}

// Channels-last mode: the one-channel input gets channels-last strides, output and every gradient
// equal the NCHW network's to float rounding, a load that replaces the weights with NCHW tensors
// (as InputArchive does) is undone by the next forward, and the output is NCHW.
TEST(UNet, ChannelsLastMatchesNchw) {
  torch::manual_seed(3);
  auto o = small_options(3);
  o.scale_shift_norm = true;
  UNet a(o), b(o);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : a->parameters()) p.add_(torch::randn_like(p) * 0.05);
  }
  gm::test::copy_module_state(*a, *b);
  b->set_channels_last(true);
  ASSERT_TRUE(b->channels_last() && b->options.channels_last);
  ASSERT_FALSE(a->channels_last());
  auto x = torch::randn({4, 1, 16, 16});
  auto t = torch::tensor({0.0f, 100.0f, 500.5f, 999.0f});
  auto y = torch::tensor({0, 1, 2, 3}, torch::kLong);
  EXPECT_TRUE(gm::nn::strictly_channels_last(x).is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_EQ(gm::nn::strictly_channels_last(x).stride(1), 1);
  auto ya = a(x, t, y), yb = b(x, t, y);
  EXPECT_LT((ya - yb).abs().max().item<double>(), 1e-4 * (1 + ya.abs().max().item<double>()));
  ya.square().mean().backward();
  yb.square().mean().backward();
  gm::test::expect_same_grads(*a, *b, 1e-4);
  // A load set_()s NCHW weights; the next forward restores the layout, with the same values.
  {
    torch::NoGradGuard no_grad;
    for (auto& p : b->parameters()) p.set_(p.detach().contiguous().clone());
  }
  ASSERT_FALSE(b->channels_last());
  torch::NoGradGuard no_grad;
  auto yc = b(x, t, y);
  EXPECT_TRUE(b->channels_last());
  EXPECT_TRUE(torch::equal(yc, yb.detach()));
  // The output is NCHW-contiguous with several channels too.
  auto o3 = small_options();
  o3.in_channels = o3.out_channels = 3;
  o3.channels_last = true;
  UNet c(o3);
  EXPECT_TRUE(c->channels_last());
  EXPECT_TRUE(c(torch::randn({2, 3, 8, 8}), torch::tensor({1.0f, 2.0f})).is_contiguous());
}

TEST(UNet, ScaleShiftNormAndDropoutRun) {
  auto o = small_options(2);
  o.scale_shift_norm = true;
  o.dropout = 0.1;
  UNet net(o);
  auto out = net(torch::randn({2, 1, 8, 8}), torch::tensor({1.0f, 2.0f}));  // y undefined = null
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 1, 8, 8}));
}

TEST(UNet, BadInputThrowsGmError) {
  auto o = small_options();
  UNet net(o);
  EXPECT_THROW(net(torch::randn({2, 1, 30, 30}), torch::tensor({1.0f, 2.0f})), gm::Error);
  EXPECT_THROW(net(torch::randn({2, 3, 28, 28}), torch::tensor({1.0f, 2.0f})), gm::Error);
  EXPECT_THROW(net(torch::randn({2, 1, 28, 28}), torch::tensor({1.0f})), gm::Error);
  EXPECT_THROW(net(torch::randn({2, 1, 28, 28}), torch::tensor({1.0f, 2.0f}),
                   torch::tensor({0, 1}, torch::kLong)),
               gm::Error);
  auto bad = small_options();
  bad.groups = 32;  // 16 + 16 = 32 ok, but 32 + 16 = 48 is not divisible by 32
  EXPECT_THROW(UNet{bad}, gm::Error);
  bad = small_options();
  bad.attention_levels = {3};
  EXPECT_THROW(UNet{bad}, gm::Error);
  bad = small_options();
  bad.num_heads = 3;
  EXPECT_THROW(UNet{bad}, gm::Error);
  UNet cond(small_options(2));
  EXPECT_THROW(cond(torch::randn({2, 1, 8, 8}), torch::tensor({1.0f, 2.0f}),
                    torch::tensor({0, 3}, torch::kLong)),
               gm::Error);
}

TEST(TimeMLP, ShapesAndConditioning) {
  torch::manual_seed(3);
  gm::nn::TimeMLP mlp(gm::nn::TimeMLPOptions{2, 64, 3, 4, 2});
  auto x = torch::randn({5, 2});
  auto t = torch::tensor({0.0f, 1.0f, 2.5f, 500.0f, 999.0f});
  auto y = torch::tensor({0, 1, 2, 3, 4}, torch::kLong);
  EXPECT_EQ(mlp(x, t, y).sizes(), (std::vector<int64_t>{5, 2}));
  EXPECT_EQ(mlp(x, t).sizes(), (std::vector<int64_t>{5, 2}));
  EXPECT_FALSE(torch::allclose(mlp(x, t, y), mlp(x, t)));  // labels change the output
  EXPECT_THROW(mlp(torch::randn({5, 3}), t), gm::Error);
}

// Timing for the report: batch 64 on 28x28 with the default options.
// Run with --gtest_also_run_disabled_tests --gtest_filter='*Timing*'.
TEST(UNet, DISABLED_TimingForwardBackwardBatch64) {
  torch::manual_seed(0);
  UNet net(UNetOptions{});
  auto x = torch::randn({64, 1, 28, 28});
  auto t = torch::randint(0, 1000, {64}).to(torch::kFloat);
  auto run = [&] {
    net->zero_grad();
    net(x, t).square().mean().backward();
  };
  run();  // warm-up
  const int reps = 5;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) run();
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
      reps;
  std::cout << "[ UNet fwd+bwd batch 64 28x28: " << ms << " ms/iter, threads "
            << torch::get_num_threads() << " ]\n";
  torch::NoGradGuard no_grad;
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) net(x, t);
  std::cout << "[ UNet fwd only batch 64: "
            << std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                       .count() /
                   reps
            << " ms/iter ]\n";
}

}  // namespace
