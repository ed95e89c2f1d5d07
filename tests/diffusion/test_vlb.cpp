// The variational bound (diffusion/vlb.h) against direct computation: Gaussian KL and the
// discretised decoder by numerical integration, the posterior q(x_{t-1} | x_t, x0) by Bayes' rule
// on a grid, and L_vlb's terms on a tiny problem by brute force; the hybrid loss trains the
// variance only through L_vlb (the mean is stop-gradiented there); the loss-aware sampler.
#include <gtest/gtest.h>

#include <cmath>

#include "genmodels/diffusion/loss.h"
#include "genmodels/diffusion/timestep_sampler.h"
#include "genmodels/diffusion/vlb.h"
#include "test_util.h"

namespace {

using namespace gm::diffusion;

double normal_pdf(double x, double m, double v) {
  return std::exp(-(x - m) * (x - m) / (2 * v)) / std::sqrt(2 * M_PI * v);
}

// KL(p || q) = integral p log(p / q) on a fine grid.
double kl_numeric(double m1, double v1, double m2, double v2) {
  double kl = 0.0;
  const double lo = m1 - 12 * std::sqrt(v1), hi = m1 + 12 * std::sqrt(v1);
  const int n = 200000;
  const double h = (hi - lo) / n;
  for (int i = 0; i < n; ++i) {
    const double x = lo + (i + 0.5) * h;
    const double p = normal_pdf(x, m1, v1), q = normal_pdf(x, m2, v2);
    if (p > 0) kl += p * std::log(p / q) * h;
  }
  return kl;
}

TEST(Vlb, GaussianKlMatchesNumericalIntegration) {
  const double cases[][4] = {{0.0, 1.0, 0.0, 1.0}, {0.3, 0.5, -0.2, 2.0}, {1.0, 1e-3, 0.9, 4e-3}};
  for (const auto& c : cases) {
    const auto kl = normal_kl(
        torch::tensor({c[0]}, torch::kDouble), torch::tensor({std::log(c[1])}, torch::kDouble),
        torch::tensor({c[2]}, torch::kDouble), torch::tensor({std::log(c[3])}, torch::kDouble));
    EXPECT_NEAR(kl.item<double>(), kl_numeric(c[0], c[1], c[2], c[3]), 1e-6);
  }
}

TEST(Vlb, DiscretisedDecoderMatchesBinIntegrals) {
  // All 256 bins of one Gaussian: each log-mass against the integral over its bin (edges to
  // infinity), and the masses sum to one.
  const torch::Tensor x = torch::arange(256, torch::kDouble) / 127.5 - 1.0;
  const double mean = 0.137, log_scale = std::log(0.05);
  const torch::Tensor ll = discretized_gaussian_log_likelihood(x, torch::full_like(x, mean),
                                                               torch::full_like(x, log_scale));
  const double sd = std::exp(log_scale);
  auto cdf = [&](double v) { return 0.5 * std::erfc(-(v - mean) / (sd * std::sqrt(2.0))); };
  double total = 0;
  for (int k = 0; k < 256; ++k) {
    const double c = k / 127.5 - 1.0;
    const double lo = k == 0 ? 0.0 : cdf(c - 1.0 / 255.0);
    const double hi = k == 255 ? 1.0 : cdf(c + 1.0 / 255.0);
    const double mass = std::max(hi - lo, 1e-12);
    EXPECT_NEAR(ll[k].item<double>(), std::log(mass), 1e-6 * std::fabs(std::log(mass)) + 1e-9) << k;
    total += std::exp(ll[k].item<double>());
  }
  EXPECT_NEAR(total, 1.0, 1e-6);
}

// T = 4 steps, one pixel: q(x_{t-1} | x_t, x0) by Bayes' rule on a grid (q(x_t | x_{t-1})
// q(x_{t-1} | x0), normalised), then its KL to p = N(mu~(x_t, x0_pred), beta~_t) by integration;
// the decoder term by the bin integral. Each against vlb_term with the beta-tilde variance.
TEST(Vlb, TermsMatchABruteForceComputationOnATinyProblem) {
  const NoiseSchedule s = linear_schedule(4, 2e-4, 1.2e-3);  // x 1000/4: betas 0.05 .. 0.3
  const double x0 = 96 / 127.5 - 1.0, x_t = -0.35, x0_pred = 0.1;
  for (int64_t t = 0; t < 4; ++t) {
    const torch::Tensor tt = torch::full({1}, t, torch::kLong);
    const auto X0 = torch::full({1, 1}, x0, torch::kDouble);
    const auto Xt = torch::full({1, 1}, x_t, torch::kDouble);
    const auto P = torch::full({1, 1}, x0_pred, torch::kDouble);
    const double got =
        vlb_term(s, X0, Xt, tt, P, p_log_variance(s, X0, tt, VarianceKind::BetaTilde))
            .item<double>();
    const double ab = s.alpha_bar(t), ab_prev = t > 0 ? s.alpha_bar(t - 1) : 1.0;
    const double alpha = ab / ab_prev;
    if (t == 0) {
      // p(x0 | x1) = N(mu, exp(log beta~_1)) through the bin of x0: mu from eq. 7 at t = 0 is
      // x0_pred (abar_prev = 1).
      const double b1 = 1 - s.alpha_bar(1) / s.alpha_bar(0);
      const double var = b1 * (1 - s.alpha_bar(0)) / (1 - s.alpha_bar(1));
      auto cdf = [&](double v) { return 0.5 * std::erfc(-(v - x0_pred) / std::sqrt(2 * var)); };
      const double mass = cdf(x0 + 1 / 255.0) - cdf(x0 - 1 / 255.0);
      EXPECT_NEAR(got, -std::log(mass) / std::log(2.0), 1e-6);
      continue;
    }
    // Bayes on a grid over x_{t-1}.
    const int n = 400000;
    const double lo = -6, hi = 6, h = (hi - lo) / n;
    std::vector<double> q(n);
    double z = 0, m = 0;
    for (int i = 0; i < n; ++i) {
      const double v = lo + (i + 0.5) * h;
      q[i] = normal_pdf(x_t, std::sqrt(alpha) * v, 1 - alpha) *
             normal_pdf(v, std::sqrt(ab_prev) * x0, 1 - ab_prev);
      z += q[i] * h;
    }
    double var = 0;
    for (int i = 0; i < n; ++i) m += (lo + (i + 0.5) * h) * q[i] * h / z;
    for (int i = 0; i < n; ++i) var += std::pow(lo + (i + 0.5) * h - m, 2) * q[i] * h / z;
    // The model: its mean from x0_pred by the same Bayes rule (the posterior mean is linear in
    // x0: shift m by the x0 coefficient, found numerically from a second x0), variance beta~_t.
    const double beta = 1 - alpha, tilde = beta * (1 - ab_prev) / (1 - ab);
    EXPECT_NEAR(var, tilde, 1e-6);
    const double coef0 = std::sqrt(ab_prev) * beta / (1 - ab);
    const double p_mean = m + coef0 * (x0_pred - x0);
    EXPECT_NEAR(got, kl_numeric(m, var, p_mean, tilde) / std::log(2.0), 1e-5) << "t " << t;
  }
}

TEST(Vlb, HybridLossTrainsTheVarianceOnlyThroughTheBound) {
  torch::manual_seed(0);
  const NoiseSchedule s = cosine_schedule(50);
  // A "network" with one parameter per output channel: mean channel a, variance channel b.
  auto a = torch::full({1}, 0.3, torch::requires_grad()),
       b = torch::full({1}, 0.2, torch::requires_grad());
  NetFn net = [&](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) {
    return torch::cat({x * a, torch::ones_like(x) * b}, 1);
  };
  LossOptions o;
  o.prediction = Prediction::Eps;
  o.class_dropout = 0.0;
  o.learned_variance = true;
  const torch::Tensor x0 = torch::rand({64, 1, 4, 4}) * 2 - 1;
  auto terms = diffusion_loss_terms(net, s, x0, {}, o);
  ASSERT_TRUE(terms.vlb.defined());
  EXPECT_TRUE(torch::isfinite(terms.vlb).all().item<bool>());
  auto ga = torch::autograd::grad({terms.vlb.sum()}, {a, b}, {}, true, false, true);
  EXPECT_FALSE(ga[0].defined() && ga[0].abs().item<double>() > 0);  // the mean is frozen in L_vlb
  EXPECT_GT(ga[1].abs().item<double>(), 0.0);
  auto gm = torch::autograd::grad({terms.mse.sum()}, {a, b}, {}, true, false, true);
  EXPECT_GT(gm[0].abs().item<double>(), 0.0);
  EXPECT_FALSE(gm[1].defined() && gm[1].abs().item<double>() > 0);  // L_simple ignores v
  o.learned_variance = false;
  EXPECT_NE(
      gm::test::error_of([&] { diffusion_loss_terms(net, s, x0, {}, o); }).find("out_channels"),
      std::string::npos);
}

TEST(Vlb, LossAwareSamplerFollowsTheSecondMoment) {
  torch::Tensor h = LossAwareSampler::make_history(4, 2), c = LossAwareSampler::make_count(4);
  LossAwareSampler sampler(h, c);
  EXPECT_FALSE(sampler.warmed_up());
  EXPECT_NEAR(sampler.probs()[0].item<double>(), 0.25, 1e-12);
  // L_t = 1, 1, 2, 4 twice each (the oldest value drops out after K = 2).
  sampler.update(torch::tensor({0, 1, 2, 3, 0}), torch::tensor({9.0, 1.0, 2.0, 4.0, 1.0}));
  EXPECT_FALSE(sampler.warmed_up());
  sampler.update(torch::tensor({0, 1, 2, 3}), torch::tensor({1.0, 1.0, 2.0, 4.0}));
  ASSERT_TRUE(sampler.warmed_up());
  EXPECT_EQ(c[0].item<int64_t>(), 3);  // the caller's buffers hold the state
  const torch::Tensor p = sampler.probs();
  EXPECT_NEAR(p[3].item<double>() / p[0].item<double>(), 4.0, 0.01);
  EXPECT_NEAR(p.sum().item<double>(), 1.0, 1e-12);
  torch::manual_seed(1);
  auto [t, w] = sampler.sample(40000);
  EXPECT_NEAR((t == 3).to(torch::kDouble).mean().item<double>(), p[3].item<double>(), 0.01);
  // Importance weights make the estimate unbiased: E[w L_t] = mean_t L_t.
  const torch::Tensor L = torch::tensor({1.0, 1.0, 2.0, 4.0}).index_select(0, t);
  EXPECT_NEAR((w.to(torch::kDouble) * L).mean().item<double>(), 2.0, 0.05);
}

}  // namespace
