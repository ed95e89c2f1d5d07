// GAN building blocks against their definitions: the gradient penalty on a critic with an
// analytic gradient, spectral normalisation against the SVD, the losses' values, and the
// networks' shapes and size errors.
#include <gtest/gtest.h>

#include <cmath>

#include "genmodels/gan/dcgan.h"
#include "genmodels/gan/losses.h"
#include "genmodels/gan/spectral_norm.h"
#include "genmodels/nn/layout.h"
#include "test_util.h"

using namespace gm::gan;

TEST(Gan, GradientPenaltyOfALinearCriticIsItsDefinition) {
  // D(x) = w . x + b has grad_x D = w everywhere, so GP = (||w|| - 1)^2 whatever the interpolates,
  // and d GP / d w = 2 (||w|| - 1) w / ||w||.
  torch::manual_seed(0);
  torch::Tensor w = torch::tensor({0.6, -1.2, 2.0, 0.3}, torch::kFloat64).requires_grad_(true);
  torch::Tensor b = torch::tensor(0.7, torch::kFloat64).requires_grad_(true);
  auto critic = [&](const torch::Tensor& x) { return torch::mv(x, w) + b; };
  torch::Tensor real = torch::randn({16, 4}, torch::kFloat64);
  torch::Tensor fake = torch::randn({16, 4}, torch::kFloat64) * 3;
  torch::Tensor gp = gradient_penalty(critic, real, fake);
  const double norm = w.detach().norm().item<double>();
  EXPECT_NEAR(gp.item<double>(), (norm - 1) * (norm - 1), 1e-12);
  gp.backward();
  torch::Tensor expected = 2 * (norm - 1) * w.detach() / norm;
  EXPECT_TRUE(torch::allclose(w.grad(), expected, 1e-10, 1e-12)) << w.grad() << expected;

  // R1 on the same critic: E ||grad||^2 = ||w||^2.
  torch::Tensor x = real.clone().requires_grad_(true);
  EXPECT_NEAR(r1_penalty(critic(x), x).item<double>(), norm * norm, 1e-12);
  EXPECT_THROW(r1_penalty(critic(real), real), gm::Error);
}

TEST(Gan, PenaltyLeakyReluHasLeakyRelusValuesAndDerivatives) {
  // A two-layer conv critic; its gradient penalty and the penalty's parameter gradients must not
  // depend on which LeakyReLU it uses (the second derivative of either is zero).
  torch::manual_seed(1);
  auto opts = torch::TensorOptions(torch::kFloat64);
  torch::Tensor w1 = torch::randn({8, 1, 3, 3}, opts).requires_grad_(true);
  torch::Tensor w2 = torch::randn({4, 8, 3, 3}, opts).requires_grad_(true);
  torch::Tensor real = torch::randn({6, 1, 9, 9}, opts), fake = torch::randn({6, 1, 9, 9}, opts);
  std::vector<torch::Tensor> results;
  for (bool penalty_form : {false, true}) {
    auto critic = [&](const torch::Tensor& x) {
      torch::Tensor h = torch::conv2d(x, w1, {}, 2);
      h = penalty_form ? leaky_relu_for_penalty(h, 0.2) : torch::leaky_relu(h, 0.2);
      return torch::conv2d(h, w2).flatten(1).sum(1);
    };
    torch::manual_seed(2);  // the same interpolation weights for both forms
    torch::Tensor x = real.clone().requires_grad_(true);
    torch::Tensor out = critic(x);
    torch::Tensor loss = gradient_penalty(critic, real, fake) + out.pow(2).mean();
    w1.mutable_grad() = torch::Tensor();
    w2.mutable_grad() = torch::Tensor();
    loss.backward();
    results.insert(results.end(), {out.detach(), loss.detach(), w1.grad(), w2.grad(), x.grad()});
  }
  for (size_t i = 0; i < 5; ++i)
    EXPECT_TRUE(torch::allclose(results[i], results[i + 5], 1e-12, 1e-12)) << "result " << i;
  EXPECT_GT(results[2].abs().sum().item<double>(), 0);
}

TEST(Gan, SpectralNormHasUnitLargestSingularValue) {
  torch::manual_seed(1);
  SNConv2d conv(8, 16, 4, 2, 1, true);
  {
    torch::NoGradGuard no_grad;
    conv->weight.mul_(50.0);  // sigma far from 1 before normalisation
  }
  conv->train();
  torch::Tensor x = torch::randn({2, 8, 8, 8});
  for (int i = 0; i < 300; ++i) conv->forward(x);  // one power step per training forward
  const torch::Tensor w = conv->effective_weight().detach().flatten(1);
  const double top = std::get<1>(torch::linalg::svd(w, false, c10::nullopt))[0].item<double>();
  EXPECT_NEAR(top, 1.0, 1e-3);
  // The raw weight's sigma is the estimate, and eval mode does not iterate.
  const double raw =
      std::get<1>(torch::linalg::svd(conv->weight.detach().flatten(1), false, c10::nullopt))[0]
          .item<double>();
  EXPECT_GT(raw, 2.0);
  conv->eval();
  const torch::Tensor u = conv->u.clone();
  conv->forward(x);
  EXPECT_TRUE(torch::equal(u, conv->u));
  // Gradients flow through sigma into the weight.
  conv->train();
  conv->forward(x).sum().backward();
  EXPECT_TRUE(conv->weight.grad().defined());
  EXPECT_GT(conv->weight.grad().abs().sum().item<double>(), 0);
}

TEST(Gan, LossesMatchTheirFormulas) {
  const torch::Tensor r = torch::tensor({2.0, -1.0}), f = torch::tensor({0.5, -3.0});
  auto sp = [](double v) { return std::log1p(std::exp(v)); };
  EXPECT_NEAR(discriminator_loss(Loss::NonSaturating, r, f).item<double>(),
              (sp(-2) + sp(1)) / 2 + (sp(0.5) + sp(-3)) / 2, 1e-6);
  EXPECT_NEAR(generator_loss(Loss::NonSaturating, f).item<double>(), (sp(-0.5) + sp(3)) / 2, 1e-6);
  EXPECT_NEAR(discriminator_loss(Loss::Hinge, r, f).item<double>(), (0 + 2) / 2.0 + (1.5 + 0) / 2.0,
              1e-6);
  EXPECT_NEAR(discriminator_loss(Loss::LeastSquares, r, f).item<double>(),
              0.5 * ((1 + 4) / 2.0 + (0.25 + 9) / 2.0), 1e-6);
  EXPECT_NEAR(discriminator_loss(Loss::Wasserstein, r, f).item<double>(), -1.25 - 0.5, 1e-6);
  EXPECT_NEAR(generator_loss(Loss::Wasserstein, f).item<double>(), 1.25, 1e-6);
  const std::string msg = gm::test::error_of([] { parse_loss("minimax"); });
  EXPECT_NE(msg.find("ns, hinge, lsgan, wgan"), std::string::npos) << msg;
}

TEST(Gan, NetworksTakeDcganSizesAndNameTheOnesTheyCannot) {
  for (int64_t size : {28, 32, 64}) {
    NetOptions o;
    o.shape = {1, size, size};
    o.num_classes = 10;
    o.g_channels = 8;
    o.d_channels = 8;
    Generator g(o);
    Discriminator d(o);
    torch::Tensor y = torch::arange(3, torch::kInt64);
    torch::Tensor x = g->forward(torch::randn({3, o.latent}), y);
    EXPECT_EQ(x.sizes(), (std::vector<int64_t>{3, 1, size, size}));
    EXPECT_LE(x.abs().max().item<double>(), 1.0);
    EXPECT_EQ(d->forward(x, y).sizes(), (std::vector<int64_t>{3}));
  }
  const std::string msg = gm::test::error_of([] { image_levels(27); });
  EXPECT_NE(msg.find("27x27"), std::string::npos) << msg;
  EXPECT_NE(msg.find("data.image_size"), std::string::npos) << msg;
}

// Channels-last networks (model.memory_format): G's samples and D's scores equal the NCHW
// networks' to float rounding, and so do all gradients of a WGAN-GP critic loss (the gradient
// penalty differentiates through D twice) and of G's loss; G's output is NCHW.
TEST(Gan, ChannelsLastMatchesNchw) {
  torch::manual_seed(6);
  NetOptions o;
  o.shape = {1, 28, 28};
  o.num_classes = 10;
  o.g_channels = 8;
  o.d_channels = 8;
  o.spectral_norm = true;
  Generator ga(o);
  Discriminator da(o);
  o.channels_last = true;
  Generator gb(o);
  Discriminator db(o);
  gm::test::copy_module_state(*ga, *gb);
  gm::test::copy_module_state(*da, *db);
  int64_t nhwc = 0;
  for (const auto& p : db->named_parameters())
    if (p.key() == "conv1.weight") nhwc += gm::nn::is_channels_last(p.value());
  EXPECT_EQ(nhwc, 1);
  torch::Tensor z = torch::randn({6, o.latent}), y = torch::arange(6, torch::kInt64);
  torch::Tensor real = torch::rand({6, 1, 28, 28}) * 2 - 1;
  auto losses = [&](Generator& g, Discriminator& d) {
    torch::Tensor fake = g->forward(z, y);
    EXPECT_TRUE(fake.is_contiguous());
    auto critic = [&](const torch::Tensor& x) { return d->forward(x, y); };
    torch::Tensor d_loss = critic(fake.detach()).mean() - critic(real).mean() +
                           10 * gradient_penalty(critic, real, fake.detach());
    return std::make_pair(d_loss, -critic(fake).mean());
  };
  torch::manual_seed(1);  // the penalty's interpolation weights
  auto [la, ga_loss] = losses(ga, da);
  torch::manual_seed(1);
  auto [lb, gb_loss] = losses(gb, db);
  EXPECT_NEAR(lb.item<double>(), la.item<double>(), 1e-4 * (1 + std::abs(la.item<double>())));
  EXPECT_NEAR(gb_loss.item<double>(), ga_loss.item<double>(), 1e-5);
  (la + ga_loss).backward();
  (lb + gb_loss).backward();
  gm::test::expect_same_grads(*ga, *gb, 1e-4);
  gm::test::expect_same_grads(*da, *db, 1e-4);
}
