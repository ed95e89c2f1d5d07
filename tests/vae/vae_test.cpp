// VAE building blocks against closed forms: the KL term, the discretised logistic's normalisation,
// the VampPrior's mixture density and its Monte Carlo KL, the importance weights' consistency with
// the ELBO terms (standard and VampPrior, unconditional and class-conditional).
#include "genmodels/vae/vae.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "genmodels/nn/layout.h"
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

namespace {

// A tiny MLP VAE on 6-D vectors (Gaussian decoder).
VaeOptions tiny(Prior prior = Prior::Standard, int64_t pseudo_inputs = 1, int64_t classes = 0) {
  VaeOptions o;
  o.shape = {6};
  o.latent = 2;
  o.arch = "mlp";
  o.hidden = 16;
  o.likelihood = Likelihood::Gaussian;
  o.prior = prior;
  o.pseudo_inputs = pseudo_inputs;
  o.num_classes = classes;
  return o;
}

}  // namespace

TEST(Vae, ImportanceWeightsAreConsistentWithTheElboTerms) {
  // With k = 1 and the same noise, log w = log p(x|z) + log p(z) - log q(z|x), whose expectation
  // is log p(x|z) - KL: compare averages over many draws on a fixed untrained network, for the
  // standard prior, the VampPrior (Monte Carlo KL) and the class-conditional VampPrior.
  struct Case {
    Prior prior;
    int64_t pseudo_inputs, classes;
  };
  for (const Case c : {Case{Prior::Standard, 1, 0}, Case{Prior::Vamp, 20, 0},
                       Case{Prior::Vamp, 21, 3}, Case{Prior::Learned, 1, 3}}) {
    torch::manual_seed(1);
    Vae v(tiny(c.prior, c.pseudo_inputs, c.classes));
    v->eval();
    {
      torch::NoGradGuard g;  // move the learned prior away from its N(0, I) start
      for (auto& p : v->named_parameters())
        if (p.key().rfind("prior_", 0) == 0) p.value().normal_(0.0, 0.5);
    }
    torch::Tensor x = torch::randn({4, 6});
    torch::Tensor y = c.classes ? torch::tensor({0, 2, 1, 2}, torch::kInt64) : torch::Tensor();
    torch::NoGradGuard g;
    torch::Tensor lw = v->log_weights(x, 20000, y);  // 4 x 20000
    // ELBO from the terms on 4 x 2000 rows (the same examples repeated).
    torch::Tensor xr = x.repeat({2000, 1}), yr = c.classes ? y.repeat({2000}) : torch::Tensor();
    auto t = v->elbo_terms(xr, yr);
    const double elbo = (t.log_px_z - t.kl).mean().item<double>();
    EXPECT_NEAR(lw.mean().item<double>(), elbo, 0.05 * std::abs(elbo))
        << "prior " << int(c.prior) << " classes " << c.classes;
    // IWAE-k >= its mean (Jensen), per example.
    torch::Tensor iwae = torch::logsumexp(lw, 1) - std::log(20000.0);
    EXPECT_TRUE((iwae >= lw.mean(1)).all().item<bool>());
    // The label matters to a conditional model's weights.
    if (c.classes) {
      torch::manual_seed(7);
      torch::Tensor a = v->log_weights(x, 4, y);
      torch::manual_seed(7);
      torch::Tensor b = v->log_weights(x, 4, (y + 1).remainder(3));
      EXPECT_GT((a - b).abs().max().item<double>(), 1e-4);
    }
  }
}

TEST(VampPrior, MixtureLogDensityIsLogSumExpOfTheComponentsMinusLogK) {
  // K = 3 components in 2-D, by hand: log (1/3 sum_k prod_l N(z_l; mu_kl, var_kl)).
  torch::Tensor z = torch::tensor({{0.3, -1.0}, {2.0, 0.5}}, torch::kFloat64);
  torch::Tensor mu = torch::tensor({{0.0, 0.0}, {1.0, -1.0}, {2.5, 1.0}}, torch::kFloat64);
  torch::Tensor lv = torch::tensor({{0.0, 0.0}, {-1.0, 0.5}, {0.7, -2.0}}, torch::kFloat64);
  torch::Tensor got = mixture_log_prob(z, mu, lv);
  for (int i = 0; i < 2; ++i) {
    double p = 0;
    for (int k = 0; k < 3; ++k) {
      double pk = 1;
      for (int l = 0; l < 2; ++l) {
        const double var = std::exp(lv[k][l].item<double>());
        const double d = z[i][l].item<double>() - mu[k][l].item<double>();
        pk *= std::exp(-0.5 * d * d / var) / std::sqrt(2 * M_PI * var);
      }
      p += pk / 3;
    }
    EXPECT_NEAR(got[i].item<double>(), std::log(p), 1e-12) << "row " << i;
  }
  // One mixture per row (N x K x L) gives the same as the shared one.
  torch::Tensor per_row = mixture_log_prob(z, mu.expand({2, 3, 2}), lv.expand({2, 3, 2}));
  EXPECT_LT((per_row - got).abs().max().item<double>(), 1e-12);

  // Through the VAE: log p(z|y) is the mixture of q(z | u_k, y) over the label's own
  // pseudo-inputs (2 classes x 3), each encoded with its class.
  torch::manual_seed(4);
  Vae v(tiny(Prior::Vamp, 6, 2));
  torch::NoGradGuard g;
  torch::Tensor u = v->pseudo_inputs();
  ASSERT_EQ(u.size(0), 6);
  torch::Tensor zz = torch::randn({5, 2});
  for (int64_t cls : {0, 1}) {
    auto [m, l] = v->encode(u.narrow(0, 3 * cls, 3), torch::full({3}, cls, torch::kInt64));
    torch::Tensor want = mixture_log_prob(zz, m, l);
    torch::Tensor have = v->log_prior(zz, torch::full({5}, cls, torch::kInt64));
    EXPECT_LT((have - want).abs().max().item<double>(), 1e-5) << "class " << cls;
  }
}

TEST(VampPrior, SingleComponentMonteCarloKlMatchesTheClosedForm) {
  // With K = 1 the VampPrior is the Gaussian q(z|u): the one-sample KL estimate
  // log q(z|x) - log p(z), averaged over many draws, must match the closed form
  // KL(N(m1, v1) || N(m2, v2)) = 1/2 sum (log v2/v1 + (v1 + (m1 - m2)^2) / v2 - 1).
  torch::manual_seed(2);
  Vae v(tiny(Prior::Vamp, 1));
  torch::NoGradGuard g;
  // x and the pseudo-input far apart, so that their posteriors differ.
  torch::Tensor x = 20.0 * torch::randn({1, 6});
  v->pseudo_inputs().copy_(-x);
  auto [m1, l1] = v->encode(x);
  auto [mp, lp] = v->prior_components();  // 1 x 1 x 2
  torch::Tensor m2 = mp[0], l2 = lp[0];
  const double closed =
      (0.5 * (l2 - l1 + (l1.exp() + (m1 - m2).square()) / l2.exp() - 1)).sum().item<double>();
  auto t = v->elbo_terms(x.repeat({200000, 1}));
  const double mc = t.kl.mean().item<double>();
  const double se = t.kl.std().item<double>() / std::sqrt(200000.0);
  std::cout << "KL closed form " << closed << ", Monte Carlo " << mc << " +- " << se << "\n";
  EXPECT_GT(closed, 0.1);
  EXPECT_NEAR(mc, closed, 4 * se + 1e-4);
  // And log p(z) is that Gaussian's density.
  torch::Tensor z = torch::randn({7, 2});
  EXPECT_LT((v->log_prior(z) - gaussian_log_prob(z, m2, l2).sum(-1)).abs().max().item<double>(),
            1e-5);
}

TEST(VampPrior, SamplesComeFromTheLabelsComponents) {
  // Conditional, 2 classes x 2 pseudo-inputs: a prior draw for class c lies near one of class
  // c's component means (their posteriors are narrow once the pseudo-inputs are far apart).
  torch::manual_seed(6);
  Vae v(tiny(Prior::Vamp, 4, 2));
  torch::NoGradGuard g;
  v->pseudo_inputs().narrow(0, 0, 2).add_(2.0);  // class 0's pseudo-inputs apart from class 1's
  v->pseudo_inputs().narrow(0, 2, 2).sub_(2.0);
  auto [mu, lv] = v->prior_components();  // 2 x 2 x 2
  at::Generator gen = at::detail::createCPUGenerator(3);
  for (int64_t cls : {0, 1}) {
    torch::Tensor z = v->sample_prior(4000, gen, torch::full({4000}, cls, torch::kInt64));
    // Log-density under the class's own mixture is at least that under the other's, on average.
    torch::Tensor own = mixture_log_prob(z, mu[cls], lv[cls]);
    torch::Tensor other = mixture_log_prob(z, mu[1 - cls], lv[1 - cls]);
    EXPECT_GE(own.mean().item<double>(), other.mean().item<double>()) << "class " << cls;
    // The draws' mean is the mixture's mean (equal weights).
    torch::Tensor want = mu[cls].mean(0);
    torch::Tensor sd = (lv[cls].exp().mean(0) + mu[cls].var(0, false)).sqrt();
    EXPECT_LT(((z.mean(0) - want) / sd).abs().max().item<double>(), 5.0 / std::sqrt(4000.0));
  }
}

TEST(LearnedPrior, ClosedFormKlAndPerClassDraws) {
  // The diagonal Gaussian KL against its Monte Carlo estimate E_q[log q - log p].
  torch::manual_seed(3);
  torch::Tensor mq = torch::tensor({0.5, -1.0, 2.0}, torch::kFloat64);
  torch::Tensor lq = torch::tensor({-1.0, 0.3, 0.0}, torch::kFloat64);
  torch::Tensor mp = torch::tensor({-0.2, 0.4, 1.0}, torch::kFloat64);
  torch::Tensor lp = torch::tensor({0.5, -0.4, 1.2}, torch::kFloat64);
  torch::Tensor z = mq + torch::exp(0.5 * lq) * torch::randn({400000, 3}, torch::kFloat64);
  const double mc =
      (gaussian_log_prob(z, mq, lq) - gaussian_log_prob(z, mp, lp)).sum(1).mean().item<double>();
  const double kl = kl_diagonal_gaussians(mq, lq, mp, lp).item<double>();
  EXPECT_NEAR(mc, kl, 0.01 * kl);
  EXPECT_NEAR(kl_diagonal_gaussians(mq, lq, torch::zeros(3, torch::kFloat64),
                                    torch::zeros(3, torch::kFloat64))
                  .item<double>(),
              kl_standard_normal(mq, lq).item<double>(), 1e-12);
  // Conditional: draws for class c follow N(m_c, exp(s_c)) and log_prior is that density.
  Vae v(tiny(Prior::Learned, 1, 3));
  torch::NoGradGuard g;
  torch::Tensor m, s;
  for (auto& p : v->named_parameters()) {
    if (p.key() == "prior_mu") m = p.value();
    if (p.key() == "prior_logvar") s = p.value();
  }
  ASSERT_TRUE(m.defined() && s.defined());
  ASSERT_EQ(m.sizes(), (std::vector<int64_t>{3, 2}));
  m.copy_(torch::tensor({{3.0, 0.0}, {0.0, -3.0}, {-2.0, 2.0}}));
  s.copy_(torch::tensor({{0.0, -1.0}, {1.0, 0.0}, {-2.0, 0.5}}));
  at::Generator gen = at::detail::createCPUGenerator(5);
  for (int64_t c = 0; c < 3; ++c) {
    torch::Tensor draws = v->sample_prior(20000, gen, torch::full({20000}, c, torch::kInt64));
    EXPECT_LT((draws.mean(0) - m[c]).abs().max().item<double>(), 0.05) << c;
    EXPECT_LT((draws.std(0) - torch::exp(0.5 * s[c])).abs().max().item<double>(), 0.05) << c;
    torch::Tensor y = torch::full({5}, c, torch::kInt64);
    torch::Tensor zz = torch::randn({5, 2});
    EXPECT_LT((v->log_prior(zz, y) - gaussian_log_prob(zz, m[c], s[c]).sum(-1))
                  .abs()
                  .max()
                  .item<double>(),
              1e-5);
  }
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
  EXPECT_NE(gm::test::error_of([] { parse_prior("gmm"); }).find("model.prior"), std::string::npos);
  // A conditional VampPrior needs at least one pseudo-input per class.
  EXPECT_NE(gm::test::error_of([] { Vae v(tiny(Prior::Vamp, 2, 3)); }).find("model.pseudo_inputs"),
            std::string::npos);
  EXPECT_NE(gm::test::error_of([] { Vae v(tiny(Prior::Vamp, 0)); }).find("model.pseudo_inputs"),
            std::string::npos);
  // A conditional model without labels says so.
  Vae c(tiny(Prior::Standard, 1, 3));
  EXPECT_NE(gm::test::error_of([&] {
              c->encode(torch::zeros({2, 6}));
            }).find("class-conditional"),
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

// Channels-last conv VAE (model.memory_format): encoder and decoder give the NCHW model's values
// and gradients to float rounding, its output is NCHW, its encoder weights are NHWC, and a load
// that replaces them with NCHW tensors (as InputArchive does) is undone by the next encode.
TEST(Vae, ChannelsLastMatchesNchw) {
  torch::manual_seed(4);
  VaeOptions o;
  o.shape = {1, 28, 28};
  o.latent = 8;
  o.hidden = 64;
  o.channels = 8;
  Vae a(o);
  o.channels_last = true;
  Vae b(o);
  gm::test::copy_module_state(*a, *b);
  auto nhwc = [&] {
    int64_t n = 0;
    for (const auto& p : b->named_parameters())
      if (p.key().rfind("encoder.", 0) == 0 && p.value().dim() == 4 && p.value().size(1) > 1)
        n += gm::nn::is_channels_last(p.value()) ? 1 : -1000;
    return n;
  };
  EXPECT_GT(nhwc(), 0);
  torch::Tensor x = torch::randint(0, 256, {6, 1, 28, 28}).to(torch::kFloat32) / 127.5 - 1;
  torch::Tensor eps = torch::randn({6, 8});
  auto loss = [&](Vae& v) {
    auto [mu, logvar] = v->encode(x);
    torch::Tensor p = v->decode(mu + torch::exp(0.5 * logvar) * eps);
    EXPECT_TRUE(p.is_contiguous());
    return (-v->log_likelihood(x, p) + kl_standard_normal(mu, logvar)).mean();
  };
  torch::Tensor la = loss(a), lb = loss(b);
  EXPECT_NEAR(lb.item<double>(), la.item<double>(), 1e-4 * std::abs(la.item<double>()));
  la.backward();
  lb.backward();
  gm::test::expect_same_grads(*a, *b, 1e-4);
  torch::NoGradGuard g;
  for (auto& p : b->parameters()) p.set_(p.detach().contiguous().clone());
  EXPECT_LT(nhwc(), 0);
  EXPECT_NEAR(loss(b).item<double>(), lb.item<double>(), 1e-5 * std::abs(lb.item<double>()));
  EXPECT_GT(nhwc(), 0);
}
