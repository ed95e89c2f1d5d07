// VAE building blocks against closed forms: the KL term, the discretised logistic's normalisation,
// the importance weights' consistency with the ELBO terms.
#include "genmodels/vae/vae.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "test_util.h"

using namespace gm::vae;

TEST(Vae, KlMatchesClosedFormAndMonteCarlo) {
  // Hand value: KL(N(1, 1) || N(0, 1)) = 1/2; KL(N(0, e^2) || N(0, 1)) = (e^2 - 1 - 2) / 2.
  EXPECT_NEAR(kl_standard_normal(torch::tensor({{1.0}}), torch::tensor({{0.0}})).item<double>(),
              0.5, 1e-7);
  EXPECT_NEAR(kl_standard_normal(torch::tensor({{0.0}}), torch::tensor({{2.0}})).item<double>(),
              0.5 * (std::exp(2.0) - 3.0), 1e-5);
  // Monte Carlo E_q[log q(z) - log p(z)] for a 3-D diagonal Gaussian.
  torch::manual_seed(0);
  torch::Tensor mu = torch::tensor({0.3, -1.2, 2.0}, torch::kFloat64);
  torch::Tensor logvar = torch::tensor({-0.5, 0.4, -2.0}, torch::kFloat64);
  torch::Tensor z = mu + torch::exp(0.5 * logvar) * torch::randn({400000, 3}, torch::kFloat64);
  torch::Tensor lq = gaussian_log_prob(z, mu, logvar).sum(1);
  torch::Tensor lp = gaussian_log_prob(z, torch::zeros_like(z), torch::zeros_like(z)).sum(1);
  const double mc = (lq - lp).mean().item<double>();
  const double kl = kl_standard_normal(mu.unsqueeze(0), logvar.unsqueeze(0)).item<double>();
  EXPECT_NEAR(mc, kl, 0.01 * kl);
}

TEST(Vae, DiscretisedLogisticIsAProbabilityMassOverThe256Levels) {
  torch::Tensor levels = torch::arange(256, torch::kFloat64) / 127.5 - 1.0;  // 256 x 1
  for (double mean : {-1.0, -0.3, 0.0, 0.77, 1.0, 1.6})
    for (double log_scale : {-8.0, -5.0, -2.0, 0.0, 1.0}) {
      torch::Tensor m = torch::full({256}, mean, torch::kFloat64);
      torch::Tensor s = torch::full({256}, log_scale, torch::kFloat64);
      const double total = discretized_logistic_log_prob(levels, m, s).exp().sum().item<double>();
      EXPECT_NEAR(total, 1.0, 2e-3) << "mean " << mean << " log-scale " << log_scale;
    }
  // A logistic centred on a level: the bin's mass is 2 sigmoid(half-width / scale) - 1.
  torch::Tensor x = torch::tensor({40.0 / 127.5 - 1.0}, torch::kFloat64);
  const double want = 2.0 / (1.0 + std::exp(-std::exp(7.0) / 255.0)) - 1.0;  // 0.973
  EXPECT_NEAR(discretized_logistic_log_prob(x, x, torch::tensor({-7.0}, torch::kFloat64))
                  .exp()
                  .item<double>(),
              want, 1e-9);
}

TEST(Vae, ImportanceWeightsAreConsistentWithTheElboTerms) {
  // With k = 1 and the same noise, log w = log p(x|z) + log p(z) - log q(z|x), whose expectation
  // is log p(x|z) - KL: compare averages over many draws on a fixed untrained network.
  torch::manual_seed(1);
  VaeOptions o;
  o.shape = {6};
  o.latent = 2;
  o.arch = "mlp";
  o.hidden = 16;
  o.likelihood = Likelihood::Gaussian;
  Vae v(o);
  v->eval();
  torch::Tensor x = torch::randn({4, 6});
  torch::NoGradGuard g;
  torch::Tensor lw = v->log_weights(x, 20000);  // 4 x 20000
  double elbo = 0;
  for (int i = 0; i < 200; ++i) {
    auto t = v->elbo_terms(x);
    elbo += (t.log_px_z - t.kl).mean().item<double>() / 200;
  }
  EXPECT_NEAR(lw.mean().item<double>(), elbo, 0.05 * std::abs(elbo));
  // IWAE-k >= its mean (Jensen), per example.
  torch::Tensor iwae = torch::logsumexp(lw, 1) - std::log(20000.0);
  EXPECT_TRUE((iwae >= lw.mean(1)).all().item<bool>());
}

TEST(Vae, BadOptionsAreClearErrors) {
  VaeOptions o;
  o.shape = {1, 30, 30};
  EXPECT_NE(gm::test::error_of([&] { Vae v(o); }).find("divisible by 4"), std::string::npos);
  o.shape = {2};
  o.arch = "mlp";
  EXPECT_NE(gm::test::error_of([&] { Vae v(o); }).find("gaussian"), std::string::npos);
  EXPECT_NE(gm::test::error_of([] { parse_likelihood("poisson"); }).find("poisson"),
            std::string::npos);
}

// bf16 autocast runs the encoder and decoder body in bfloat16 but hands fp32 decoder parameters
// to the likelihood, and on the same weights gives the fp32 loss to within bf16 rounding.
TEST(Vae, Bf16AutocastKeepsOutputLayerAndLossInFp32) {
  torch::manual_seed(3);
  VaeOptions o;
  o.shape = {1, 28, 28};
  o.latent = 8;
  o.hidden = 64;
  o.channels = 8;
  Vae f32(o);
  o.bf16 = true;
  Vae b16(o);
  {
    torch::NoGradGuard g;
    auto src = f32->parameters(), dst = b16->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  torch::Tensor x = torch::randint(0, 256, {16, 1, 28, 28}).to(torch::kFloat32) / 127.5 - 1;
  torch::Tensor z = torch::randn({16, 8});
  torch::Tensor p32 = f32->decode(z), p16 = b16->decode(z);
  EXPECT_EQ(p16.scalar_type(), torch::kFloat32);
  EXPECT_EQ(b16->encode(x).first.scalar_type(), torch::kFloat32);
  const double l32 = f32->log_likelihood(x, p32).mean().item<double>();
  const double l16 = b16->log_likelihood(x, p16).mean().item<double>();
  EXPECT_NEAR(l16, l32, 0.01 * std::abs(l32));
  EXPECT_GT((p16 - p32).abs().max().item<double>(), 0.0);  // it really ran in bf16
}
