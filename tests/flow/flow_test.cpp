// Flow building blocks: exact inverses (1e-5), log-determinants equal to log|det| of the autograd
// Jacobian (float64), and a 2-D flow's density integrates to 1 on a grid.
#include "genmodels/flow/flow.h"

#include <gtest/gtest.h>

#include "genmodels/flow/blocks.h"
#include "genmodels/nn/layout.h"
#include "test_util.h"

using namespace gm::flow;

namespace {

// Zero-initialised layers make couplings and priors the identity: perturb every parameter so the
// checks see a generic bijection.
void perturb(torch::nn::Module& m, double scale = 0.3) {
  torch::NoGradGuard ng;
  for (auto& p : m.parameters()) p.add_(scale * torch::randn_like(p));
}

// log|det J| of a map R^D -> R^D (one example, float64) from the autograd Jacobian.
double autograd_logdet(const std::function<torch::Tensor(const torch::Tensor&)>& f,
                       const torch::Tensor& x0) {
  torch::Tensor x = x0.clone().requires_grad_(true);
  torch::Tensor y = f(x).reshape(-1);
  const int64_t D = y.numel();
  EXPECT_EQ(D, x.numel());
  torch::Tensor J = torch::empty({D, D}, torch::kFloat64);
  for (int64_t i = 0; i < D; ++i) {
    auto g = torch::autograd::grad({y[i]}, {x}, {}, /*retain_graph=*/true)[0];
    J[i] = g.reshape(-1);
  }
  return std::get<1>(torch::linalg_slogdet(J)).item<double>();
}

struct Case {
  std::string name;
  std::shared_ptr<Bijection> b;
  std::vector<int64_t> shape;  // one example
};

std::vector<Case> cases() {
  std::vector<Case> c;
  CouplingOptions img;
  img.channels = 4;
  img.hidden = 16;
  for (Mask m : {Mask::Checkerboard, Mask::Channel})
    for (bool parity : {false, true})
      for (ScaleFn s : {ScaleFn::Tanh, ScaleFn::Sigmoid})
        for (int64_t res : {0, 1}) {
          img.mask = m, img.parity = parity, img.scale = s, img.res_blocks = res;
          c.push_back({std::string("coupling ") + (m == Mask::Channel ? "channel" : "checker") +
                           (parity ? " odd" : " even") + (s == ScaleFn::Tanh ? " tanh" : " sigm") +
                           " res" + std::to_string(res),
                       std::make_shared<AffineCoupling>(img),
                       {4, 4, 4}});
        }
  CouplingOptions vec;
  vec.image = false;
  vec.channels = 3;
  vec.hidden = 16;
  vec.mask = Mask::Half;
  for (bool parity : {false, true}) {
    vec.parity = parity;
    c.push_back({"coupling half", std::make_shared<AffineCoupling>(vec), {3}});
  }
  c.push_back({"actnorm image", std::make_shared<ActNorm>(4, true), {4, 4, 4}});
  c.push_back({"actnorm vector", std::make_shared<ActNorm>(3, false), {3}});
  c.push_back({"invconv image", std::make_shared<InvConv1x1>(4, true), {4, 4, 4}});
  c.push_back({"invconv vector", std::make_shared<InvConv1x1>(3, false), {3}});
  c.push_back({"squeeze", std::make_shared<Squeeze>(), {2, 4, 6}});
  return c;
}

// A 1x8x8 glow or realnvp with 2 steps per level and width 8 (3 levels: 2 factor-outs).
FlowOptions small_image_flow(const std::string& arch) {
  FlowOptions o;
  o.arch = arch;
  o.shape = {1, 8, 8};
  o.steps = 2;
  o.hidden = 8;
  o.res_blocks = arch == "realnvp" ? 1 : 0;
  return o;
}

std::vector<int64_t> batch_shape(int64_t n, const std::vector<int64_t>& s) {
  std::vector<int64_t> out = {n};
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

}  // namespace

TEST(FlowBlocks, InverseOfForwardIsIdentity) {
  torch::manual_seed(0);
  for (auto& c : cases()) {
    torch::Tensor x = torch::randn(batch_shape(8, c.shape));
    torch::Tensor ld = torch::zeros({8});
    c.b->forward(x, ld);  // ActNorm's data-dependent init happens here
    perturb(*c.b, 0.05);  // larger random weights make sigmoid couplings ill-conditioned
    ld = torch::zeros({8});
    torch::Tensor y = c.b->forward(x, ld);
    if (y.sizes() == x.sizes()) {
      EXPECT_GT((y - x).abs().max().item<double>(), 1e-3) << c.name << " is the identity";
    }
    EXPECT_LT((c.b->inverse(y) - x).abs().max().item<double>(), 1e-5) << c.name;
  }
}

TEST(FlowBlocks, LogDetEqualsAutogradJacobian) {
  torch::manual_seed(1);
  for (auto& c : cases()) {
    c.b->to(torch::kFloat64);
    torch::Tensor warm = torch::randn(batch_shape(16, c.shape), torch::kFloat64);
    torch::Tensor ld0 = torch::zeros({16}, torch::kFloat64);
    c.b->forward(warm, ld0);
    perturb(*c.b);
    torch::Tensor x = torch::randn(batch_shape(1, c.shape), torch::kFloat64);
    torch::Tensor ld = torch::zeros({1}, torch::kFloat64);
    c.b->forward(x, ld);
    const double expect = autograd_logdet(
        [&](const torch::Tensor& v) {
          torch::Tensor l = torch::zeros({1}, torch::kFloat64);
          return c.b->forward(v, l);
        },
        x);
    EXPECT_NEAR(ld.item<double>(), expect, 1e-8) << c.name;
  }
}

// model.precision=bf16: the conditioner runs in bf16, yet the coupling stays an exact
// bijection with an exact log-determinant (the conditioner only sees the conditioning half).
TEST(FlowBlocks, Bf16ConditionerKeepsExactInverseAndLogDet) {
  for (Mask m : {Mask::Checkerboard, Mask::Channel}) {
    CouplingOptions o;
    o.channels = 4;
    o.hidden = 32;
    o.mask = m;
    o.res_blocks = m == Mask::Checkerboard ? 1 : 0;
    torch::manual_seed(4);
    AffineCoupling ref(o);
    o.bf16 = true;
    AffineCoupling half(o);
    perturb(ref, 0.05);
    {
      torch::NoGradGuard ng;
      auto src = ref.named_parameters();
      for (auto& p : half.named_parameters()) p.value().copy_(src[p.key()]);
    }
    torch::Tensor x = torch::randn({8, 4, 6, 6});
    torch::Tensor ld_ref = torch::zeros({8}), ld = torch::zeros({8});
    torch::Tensor y_ref = ref.forward(x, ld_ref), y = half.forward(x, ld);
    // The body really ran in bf16: close to fp32, but not equal.
    const double diff = (y - y_ref).abs().max().item<double>();
    EXPECT_GT(diff, 1e-6) << "bf16 conditioner gave fp32 results";
    EXPECT_LT(diff, 5e-2);
    EXPECT_EQ(y.scalar_type(), torch::kFloat32);
    EXPECT_EQ(ld.scalar_type(), torch::kFloat32);
    EXPECT_LT((half.inverse(y) - x).abs().max().item<double>(), 1e-5);
    torch::Tensor x1 = x.slice(0, 0, 1);
    torch::Tensor l1 = torch::zeros({1});
    half.forward(x1, l1);
    const double expect = autograd_logdet(
        [&](const torch::Tensor& v) {
          torch::Tensor l = torch::zeros({1});
          return half.forward(v, l);
        },
        x1);
    EXPECT_NEAR(l1.item<double>(), expect, 1e-3 * (1 + std::abs(expect)));
  }
}

TEST(FlowBlocks, SplitWithLearnedPriorIsInvertibleWithExactLogDet) {
  torch::manual_seed(2);
  for (bool prior : {false, true}) {
    Split s(4, prior);
    s.to(torch::kFloat64);
    perturb(s);
    torch::Tensor x = torch::randn({1, 4, 3, 3}, torch::kFloat64);
    torch::Tensor ld = torch::zeros({1}, torch::kFloat64);
    auto [kept, z] = s.forward(x, ld);
    EXPECT_LT((s.inverse(kept, z) - x).abs().max().item<double>(), 1e-10);
    const double expect = autograd_logdet(
        [&](const torch::Tensor& v) {
          torch::Tensor l = torch::zeros({1}, torch::kFloat64);
          auto [k, zz] = s.forward(v, l);
          return torch::cat({k.reshape(-1), zz.reshape(-1)});
        },
        x);
    EXPECT_NEAR(ld.item<double>(), expect, 1e-8) << (prior ? "learned prior" : "plain");
  }
}

TEST(FlowBlocks, LogitTransformLogDetAndInverse) {
  torch::Tensor u = torch::rand({1, 6}, torch::kFloat64);
  torch::Tensor ld = torch::zeros({1}, torch::kFloat64);
  torch::Tensor y = logit_transform(u, 0.05, ld);
  EXPECT_LT((logit_inverse(y, 0.05) - u).abs().max().item<double>(), 1e-12);
  const double expect = autograd_logdet(
      [](const torch::Tensor& v) {
        torch::Tensor l = torch::zeros({1}, torch::kFloat64);
        return logit_transform(v, 0.05, l);
      },
      u);
  EXPECT_NEAR(ld.item<double>(), expect, 1e-10);
}

TEST(FlowModels, WholeFlowsInvertAndTheirLogDetIsExact) {
  torch::manual_seed(3);
  for (const std::string arch : {"glow", "realnvp"}) {
    FlowOptions o = small_image_flow(arch);
    Flow f(o);
    f->to(torch::kFloat64);
    torch::Tensor warm = torch::randn({16, 1, 8, 8}, torch::kFloat64);
    f->encode(warm);  // ActNorm init
    perturb(*f, 0.1);
    ASSERT_EQ(f->latent_shapes().size(), 3u) << arch;  // 8x8: 3 levels, 2 factor-outs
    torch::Tensor x = torch::randn({4, 1, 8, 8}, torch::kFloat64);
    auto [zs, ld] = f->encode(x);
    EXPECT_LT((f->decode(zs) - x).abs().max().item<double>(), 1e-9) << arch;
    torch::Tensor x1 = x.narrow(0, 0, 1);
    const double expect = autograd_logdet(
        [&](const torch::Tensor& v) {
          std::vector<torch::Tensor> flat;
          for (auto& z : f->encode(v).first) flat.push_back(z.reshape(-1));
          return torch::cat(flat);
        },
        x1);
    EXPECT_NEAR(ld[0].item<double>(), expect, 1e-7) << arch;
    // float32 round trip at the 1e-5 the issue asks for
    f->to(torch::kFloat32);
    torch::Tensor xf = torch::randn({4, 1, 8, 8});
    EXPECT_LT((f->decode(f->encode(xf).first) - xf).abs().max().item<double>(), 1e-5) << arch;
  }
}

// Channels-last conditioners (model.memory_format): the same log-density, gradients and inverse
// as the NCHW flow to float rounding; the conditioner weights are NHWC, and a load that replaces
// them with NCHW tensors (as InputArchive does) is undone by the next pass.
TEST(FlowModels, ChannelsLastMatchesNchw) {
  torch::manual_seed(5);
  for (const std::string arch : {"glow", "realnvp"}) {
    FlowOptions o = small_image_flow(arch);
    Flow a(o);
    o.channels_last = true;
    Flow b(o);
    a->encode(torch::randn({16, 1, 8, 8}));  // ActNorm init
    perturb(*a, 0.1);
    gm::test::copy_module_state(*a, *b);
    auto nhwc_weights = [&] {
      int64_t n = 0;
      for (const auto& p : b->named_parameters())
        if (p.value().dim() == 4 && p.value().size(1) > 1 && p.value().size(2) > 1 &&
            p.key().find(".net.") != std::string::npos)
          n += gm::nn::is_channels_last(p.value()) ? 1 : -1000;
      return n;
    };
    EXPECT_GT(nhwc_weights(), 0) << arch;
    torch::Tensor x = torch::randn({4, 1, 8, 8});
    torch::Tensor la = a->log_prob(x), lb = b->log_prob(x);
    EXPECT_LT((la - lb).abs().max().item<double>(), 1e-4 * (1 + la.abs().max().item<double>()))
        << arch;
    la.sum().backward();
    lb.sum().backward();
    gm::test::expect_same_grads(*a, *b, 1e-4);
    torch::NoGradGuard ng;
    EXPECT_LT((b->decode(b->encode(x).first) - x).abs().max().item<double>(), 1e-5) << arch;
    for (auto& p : b->parameters()) p.set_(p.detach().contiguous().clone());
    EXPECT_LT(nhwc_weights(), 0) << arch;
    EXPECT_TRUE(torch::allclose(b->log_prob(x), lb.detach(), 1e-5, 1e-4)) << arch;
    EXPECT_GT(nhwc_weights(), 0) << arch;
  }
}

// Class-conditional flows (a learned per-class prior on every latent): for each class an exact
// bijection with its own log-determinant, different densities for different classes once the
// prior is trained (here: perturbed), and a clear error without labels.
TEST(FlowModels, ClassConditionalFlowsInvertPerClassWithExactLogDet) {
  torch::manual_seed(4);
  for (const std::string arch : {"glow", "realnvp"}) {
    FlowOptions o;
    o.arch = arch;
    o.shape = {1, 8, 8};
    o.steps = 1;
    o.hidden = 8;
    o.num_classes = 3;
    Flow f(o);
    f->to(torch::kFloat64);
    const torch::Tensor y = torch::tensor({0, 1, 2, 1}, torch::kLong);
    f->encode(torch::randn({16, 1, 8, 8}, torch::kFloat64), y.repeat({4}));  // ActNorm init
    perturb(*f, 0.1);
    torch::Tensor x = torch::randn({4, 1, 8, 8}, torch::kFloat64);
    auto [zs, ld] = f->encode(x, y);
    EXPECT_LT((f->decode(zs, y) - x).abs().max().item<double>(), 1e-9) << arch;
    for (int64_t c = 0; c < 3; ++c) {
      const torch::Tensor yc = torch::full({1}, c, torch::kLong);
      const torch::Tensor x1 = x.narrow(0, 0, 1);
      const double got = f->encode(x1, yc).second.item<double>();
      const double expect = autograd_logdet(
          [&](const torch::Tensor& v) {
            std::vector<torch::Tensor> flat;
            for (auto& z : f->encode(v, yc).first) flat.push_back(z.reshape(-1));
            return torch::cat(flat);
          },
          x1);
      EXPECT_NEAR(got, expect, 1e-7) << arch << " class " << c;
    }
    const torch::Tensor lp0 = f->log_prob(x, torch::zeros({4}, torch::kLong));
    const torch::Tensor lp1 = f->log_prob(x, torch::ones({4}, torch::kLong));
    EXPECT_GT((lp0 - lp1).abs().min().item<double>(), 1e-3) << arch;
    const std::string err = gm::test::error_of([&] { f->log_prob(x); });
    EXPECT_NE(err.find("class labels"), std::string::npos) << err;
  }
}

TEST(FlowModels, ToyDensityIntegratesToOne) {
  torch::manual_seed(4);
  for (const std::string arch : {"glow", "realnvp"}) {
    FlowOptions o;
    o.arch = arch;
    o.shape = {2};
    o.steps = 4;
    o.hidden = 32;
    Flow f(o);
    f->encode(torch::randn({256, 2}));
    perturb(*f, 0.1);
    const double extent = 8.0;
    const int64_t size = 400;
    torch::Tensor lp = log_prob_grid(*f, extent, size).to(torch::kFloat64);
    const double h = 2 * extent / size;
    const double mass = lp.exp().sum().item<double>() * h * h;
    EXPECT_NEAR(mass, 1.0, 0.02) << arch;
  }
}

TEST(FlowModels, BadOptionsAreClearErrors) {
  FlowOptions o;
  o.shape = {1, 28, 28};
  o.levels = 3;
  EXPECT_NE(gm::test::error_of([&] { Flow f(o); }).find("model.levels=3"), std::string::npos);
  o.arch = "maf";
  EXPECT_NE(gm::test::error_of([&] { Flow f(o); }).find("glow or realnvp"), std::string::npos);
  EXPECT_EQ(auto_levels({1, 28, 28}), 2);
  EXPECT_EQ(auto_levels({3, 32, 32}), 3);
}
