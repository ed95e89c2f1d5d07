// The fused GroupNorm + scale/shift + SiLU equals LibTorch's unfused ops: values and every
// gradient, fp32 and bf16, odd sizes (vector tails), with and without scale/shift, every
// instruction-set build this CPU runs, channels-last input, double backward, any thread count.
#include <gtest/gtest.h>

#include <string>

#include "genmodels/core/error.h"
#include "genmodels/nn/fused_norm.h"
#include "genmodels/nn/kernels/group_norm_silu.h"

namespace {

using gm::nn::group_norm_silu;
using gm::nn::group_norm_silu_reference;

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double tol, const char* what) {
  ASSERT_TRUE(a.defined() && b.defined()) << what;
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const auto af = a.to(torch::kFloat), bf = b.to(torch::kFloat);
  EXPECT_LT((af - bf).abs().max().item<double>(), tol * (1 + bf.abs().max().item<double>()))
      << what;
}

struct Inputs {
  torch::Tensor x, w, b, scale, shift, dy;
};

Inputs make_inputs(std::vector<int64_t> shape, bool film, torch::ScalarType dtype) {
  torch::manual_seed(11);
  Inputs in;
  const int64_t n = shape[0], c = shape[1];
  // A mean far from 0 checks the one-pass variance.
  in.x = (torch::randn(shape) * 1.7 + 3.0).to(dtype);
  in.w = torch::randn({c}) * 0.5 + 1.0;
  in.b = torch::randn({c}) * 0.3;
  if (film) {
    in.scale = torch::randn({n, c}) * 0.4;
    in.shift = torch::randn({n, c}) * 0.4;
  }
  in.dy = torch::randn(shape).to(dtype);
  return in;
}

// Forward and all gradients of `fn` at fresh leaf copies of the inputs.
std::vector<torch::Tensor> run(const Inputs& in, int64_t groups, bool fused,
                               gm::nn::NormActivation act = gm::nn::NormActivation::SiLU) {
  auto leaf = [](const torch::Tensor& t) {
    return t.defined() ? t.detach().clone().requires_grad_(true) : t;
  };
  Inputs l{leaf(in.x), leaf(in.w), leaf(in.b), leaf(in.scale), leaf(in.shift), in.dy};
  torch::Tensor y;
  if (act == gm::nn::NormActivation::SiLU)
    y = fused ? group_norm_silu(l.x, groups, l.w, l.b, 1e-5, l.scale, l.shift)
              : group_norm_silu_reference(l.x, groups, l.w, l.b, 1e-5, l.scale, l.shift);
  else
    y = fused
            ? gm::nn::group_norm_act(l.x, groups, l.w, l.b, 1e-5, act, l.scale, l.shift)
            : gm::nn::group_norm_act_reference(l.x, groups, l.w, l.b, 1e-5, act, l.scale, l.shift);
  (y.to(torch::kFloat) * l.dy.to(torch::kFloat)).sum().backward();
  std::vector<torch::Tensor> out = {y.detach(), l.x.grad()};
  if (l.w.defined()) out.insert(out.end(), {l.w.grad(), l.b.grad()});
  if (l.scale.defined()) {
    out.push_back(l.scale.grad());
    out.push_back(l.shift.grad());
  }
  return out;
}

void check_against_reference(std::vector<int64_t> shape, int64_t groups, bool film,
                             torch::ScalarType dtype, double tol) {
  const Inputs in = make_inputs(shape, film, dtype);
  const auto got = run(in, groups, true), want = run(in, groups, false);
  const char* names[] = {"y", "dx", "dweight", "dbias", "dscale", "dshift"};
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) expect_close(got[i], want[i], tol, names[i]);
}

TEST(FusedNorm, MatchesReferenceFp32) {
  ASSERT_TRUE(gm::nn::fused_kernels_enabled());
  check_against_reference({3, 12, 5, 7}, 4, true, torch::kFloat, 2e-5);  // tails everywhere
  check_against_reference({3, 12, 5, 7}, 4, false, torch::kFloat, 2e-5);
  check_against_reference({2, 64, 28, 28}, 32, true, torch::kFloat, 2e-5);  // a U-Net level
  check_against_reference({4, 6, 1, 1}, 3, true, torch::kFloat, 2e-5);      // hw = 1
  check_against_reference({2, 8, 33}, 8, false, torch::kFloat, 2e-5);       // 1-D, one per group
}

TEST(FusedNorm, InstanceNormWithReluOrNoActivation) {
  // CycleGAN's norm: one channel per group, no affine parameters, ReLU or nothing after it.
  using gm::nn::NormActivation;
  for (auto act : {NormActivation::ReLU, NormActivation::None}) {
    for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
      for (bool affine : {false, true}) {
        Inputs in = make_inputs({3, 10, 7, 5}, false, dtype);
        if (!affine) in.w = in.b = torch::Tensor();
        const double tol = dtype == torch::kFloat ? 2e-5 : 2e-2;
        const auto got = run(in, 10, true, act), want = run(in, 10, false, act);
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < got.size(); ++i) expect_close(got[i], want[i], tol, "instance norm");
      }
    }
  }
  // And it is InstanceNorm2d's instance norm.
  Inputs in = make_inputs({2, 6, 9, 9}, false, torch::kFloat);
  torch::nn::InstanceNorm2d ref(torch::nn::InstanceNorm2dOptions(6));
  expect_close(gm::nn::group_norm_act(in.x, 6, {}, {}, 1e-5, NormActivation::ReLU),
               torch::relu(ref->forward(in.x)), 2e-5, "InstanceNorm2d");
}

TEST(FusedNorm, MatchesReferenceBf16) {
  // Both paths compute in fp32 from the same bf16 input; outputs and dx round to bf16.
  check_against_reference({3, 12, 5, 7}, 4, true, torch::kBFloat16, 2e-2);
  check_against_reference({2, 64, 14, 14}, 32, false, torch::kBFloat16, 2e-2);
}

// Every instruction-set build the CPU can run, called directly (the op itself uses the best).
TEST(FusedNorm, EveryIsaBuildMatches) {
  __builtin_cpu_init();
  std::vector<gm::nn::kernels::GnSiluKernels> tables = {gm::nn::kernels::gn_silu_kernels_default()};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    tables.push_back(gm::nn::kernels::gn_silu_kernels_avx2());
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    tables.push_back(gm::nn::kernels::gn_silu_kernels_avx512());
  const Inputs in = make_inputs({3, 12, 5, 7}, true, torch::kFloat);
  using gm::nn::NormActivation;
  for (auto act : {NormActivation::SiLU, NormActivation::ReLU, NormActivation::None}) {
    const torch::Tensor want =
        gm::nn::group_norm_act_reference(in.x, 4, in.w, in.b, 1e-5, act, in.scale, in.shift);
    gm::nn::kernels::GnSiluShape s;
    s.n = 3;
    s.c = 12;
    s.hw = 35;
    s.groups = 4;
    s.eps = 1e-5f;
    s.act = static_cast<gm::nn::kernels::GnActivation>(act);
    torch::Tensor dx_first;
    for (const auto& k : tables) {
      torch::Tensor y = torch::empty_like(in.x), mean = torch::empty({3, 4}),
                    rstd = torch::empty({3, 4});
      k.forward_f32(in.x.data_ptr<float>(), in.w.data_ptr<float>(), in.b.data_ptr<float>(),
                    in.scale.data_ptr<float>(), in.shift.data_ptr<float>(), y.data_ptr<float>(),
                    mean.data_ptr<float>(), rstd.data_ptr<float>(), s);
      expect_close(y, want, 2e-5, k.isa);
      torch::Tensor dx = torch::empty_like(in.x), d1 = torch::empty({3, 12}),
                    d2 = torch::empty({3, 12});
      k.backward_f32(in.dy.data_ptr<float>(), in.x.data_ptr<float>(), in.w.data_ptr<float>(),
                     in.b.data_ptr<float>(), in.scale.data_ptr<float>(), in.shift.data_ptr<float>(),
                     mean.data_ptr<float>(), rstd.data_ptr<float>(), dx.data_ptr<float>(),
                     d1.data_ptr<float>(), d2.data_ptr<float>(), s);
      if (!dx_first.defined()) dx_first = dx;
      expect_close(dx, dx_first, 2e-5, k.isa);
    }
    // and the default build's dx is the reference's
    expect_close(dx_first, run(in, 4, false, act)[1], 2e-5, "dx (default build)");
    // The NHWC kernels on the same values in channels-last memory.
    s.channels_last = true;
    const auto cl = torch::MemoryFormat::ChannelsLast;
    const torch::Tensor xcl = in.x.contiguous(cl), dycl = in.dy.contiguous(cl);
    for (const auto& k : tables) {
      torch::Tensor y = torch::empty_like(xcl), mean = torch::empty({3, 4}),
                    rstd = torch::empty({3, 4});
      k.forward_f32(xcl.data_ptr<float>(), in.w.data_ptr<float>(), in.b.data_ptr<float>(),
                    in.scale.data_ptr<float>(), in.shift.data_ptr<float>(), y.data_ptr<float>(),
                    mean.data_ptr<float>(), rstd.data_ptr<float>(), s);
      expect_close(y, want, 2e-5, k.isa);
      torch::Tensor dx = torch::empty_like(xcl), d1 = torch::empty({3, 12}),
                    d2 = torch::empty({3, 12});
      k.backward_f32(dycl.data_ptr<float>(), xcl.data_ptr<float>(), in.w.data_ptr<float>(),
                     in.b.data_ptr<float>(), in.scale.data_ptr<float>(), in.shift.data_ptr<float>(),
                     mean.data_ptr<float>(), rstd.data_ptr<float>(), dx.data_ptr<float>(),
                     d1.data_ptr<float>(), d2.data_ptr<float>(), s);
      expect_close(dx, dx_first, 2e-5, k.isa);
    }
  }
}

// Channels-last input runs the NHWC kernels: values and gradients as the reference, and y and dx
// stay channels-last (no layout change for the next convolution).
TEST(FusedNorm, ChannelsLastKernelsMatchReference) {
  using gm::nn::NormActivation;
  const auto cl = torch::MemoryFormat::ChannelsLast;
  struct Case {
    std::vector<int64_t> shape;
    int64_t groups;
    bool film;
  };
  // tails (12 and 40 channels are not whole vectors), a U-Net level, one channel per group
  for (const Case& k : {Case{{3, 12, 5, 7}, 4, true}, Case{{2, 64, 14, 14}, 32, true},
                        Case{{2, 40, 3, 9}, 8, false}, Case{{2, 6, 4, 4}, 6, false}}) {
    for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
      for (auto act : {NormActivation::SiLU, NormActivation::None}) {
        Inputs in = make_inputs(k.shape, k.film, dtype);
        in.x = in.x.contiguous(cl);
        in.dy = in.dy.contiguous(cl);
        const auto got = run(in, k.groups, true, act), want = run(in, k.groups, false, act);
        ASSERT_EQ(got.size(), want.size());
        const double tol = dtype == torch::kFloat ? 2e-5 : 2e-2;
        for (size_t i = 0; i < got.size(); ++i) expect_close(got[i], want[i], tol, "channels-last");
        EXPECT_TRUE(got[0].is_contiguous(cl) && !got[0].is_contiguous()) << "y";
        EXPECT_TRUE(got[1].is_contiguous(cl) && !got[1].is_contiguous()) << "dx";
      }
    }
  }
}

TEST(FusedNorm, ChannelsLastAndScaleShapes) {
  Inputs in = make_inputs({2, 8, 6, 6}, true, torch::kFloat);
  const torch::Tensor want =
      group_norm_silu_reference(in.x, 4, in.w, in.b, 1e-5, in.scale, in.shift);
  const torch::Tensor xcl = in.x.contiguous(torch::MemoryFormat::ChannelsLast);
  expect_close(group_norm_silu(xcl, 4, in.w, in.b, 1e-5, in.scale, in.shift), want, 2e-5, "cl");
  expect_close(group_norm_silu(in.x, 4, in.w, in.b, 1e-5, in.scale.view({2, 8, 1, 1}),
                               in.shift.view({2, 8, 1, 1})),
               want, 2e-5, "N x C x 1 x 1 scale");
}

// A gradient penalty differentiates the input gradient again (create_graph).
TEST(FusedNorm, DoubleBackward) {
  const Inputs in = make_inputs({2, 8, 5, 5}, true, torch::kFloat);
  auto penalty_grads = [&](bool fused) {
    torch::Tensor x = in.x.clone().requires_grad_(true), w = in.w.clone().requires_grad_(true),
                  sc = in.scale.clone().requires_grad_(true);
    const torch::Tensor y = fused ? group_norm_silu(x, 4, w, in.b, 1e-5, sc, in.shift)
                                  : group_norm_silu_reference(x, 4, w, in.b, 1e-5, sc, in.shift);
    const auto gx = torch::autograd::grad({(y * in.dy).sum()}, {x}, {}, true, true)[0];
    gx.square().sum().backward();
    return std::vector<torch::Tensor>{gx.detach(), w.grad(), sc.grad()};
  };
  const auto got = penalty_grads(true), want = penalty_grads(false);
  expect_close(got[0], want[0], 2e-5, "dx");
  expect_close(got[1], want[1], 2e-4, "d penalty / d weight");
  expect_close(got[2], want[2], 2e-4, "d penalty / d scale");
}

// One task per (sample, group), or per sample in channels-last: the result is bit-identical for
// any thread count.
TEST(FusedNorm, ThreadCountInvariant) {
  for (bool cl : {false, true}) {
    Inputs in = make_inputs({4, 32, 14, 14}, true, torch::kFloat);
    if (cl) in.x = in.x.contiguous(torch::MemoryFormat::ChannelsLast);
    const int threads = torch::get_num_threads();
    torch::set_num_threads(1);
    const auto one = run(in, 8, true);
    torch::set_num_threads(2);
    const auto two = run(in, 8, true);
    torch::set_num_threads(threads);
    for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(torch::equal(one[i], two[i])) << i;
  }
}

TEST(FusedNorm, BadArgumentsAreOneLineErrors) {
  const Inputs in = make_inputs({2, 6, 3, 3}, true, torch::kFloat);
  try {
    group_norm_silu(in.x, 4, in.w, in.b, 1e-5);
    FAIL() << "expected an error";
  } catch (const gm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("groups = 4 must divide C = 6"), std::string::npos);
  }
  EXPECT_THROW(group_norm_silu(in.x, 3, in.w, in.b, 1e-5, in.scale), gm::Error);
  EXPECT_THROW(group_norm_silu(in.x, 3, in.w, in.b, 1e-5, in.scale.narrow(1, 0, 3),
                               in.shift.narrow(1, 0, 3)),
               gm::Error);
}

}  // namespace
