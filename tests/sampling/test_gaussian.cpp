// Samplers against the exact optimal denoiser of Gaussian data (STYLE.md #11): for
// x0 ~ N(mu, s^2 I), eps*(x_t, t) = sqrt(1-abar) (x_t - sqrt(abar) mu) / (abar s^2 + 1 - abar),
// so DDPM (Ho et al. 2020 Alg. 2) and DDIM (Song et al. 2021 eq. 12) must return N(mu, s^2 I).
// With this eps every sampler step is affine in x_t, so the exact output variance of the
// *discretised* sampler is a scalar recursion (predicted_std below); samples must match it to
// sampling error, and it must approach s^2 (with 1000 steps, tightly; with 50, within 10-20 %).
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "genmodels/diffusion/denoiser.h"
#include "genmodels/sampling/samplers.h"

namespace {

using namespace gm::diffusion;
using namespace gm::sampling;

constexpr int64_t kN = 20000;
const std::vector<float> kMu = {0.5f, -0.3f, 0.2f};
constexpr double kS = 0.3;

// Optimal eps for class means `mus` (row per class; labels pick the row, undefined = row 0),
// exposed in parameterisation p.
NetFn analytic_net(const NoiseSchedule& sched, torch::Tensor mus, Prediction p) {
  return [sched, mus, p](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) {
    auto abar = alpha_bar_at(sched, t).to(torch::kFloat).view({-1, 1});
    auto mu = y.defined() ? mus.index_select(0, y) : mus[0].unsqueeze(0);
    auto eps = torch::sqrt(1 - abar) * (x - torch::sqrt(abar) * mu) / (abar * kS * kS + 1 - abar);
    switch (p) {
      case Prediction::Eps:
        return eps;
      case Prediction::X0:
        return eps_to_x0(x, eps, abar);
      case Prediction::V:
        return eps_to_v(x, eps, abar);
    }
    return eps;
  };
}

torch::Tensor mu_tensor() { return torch::tensor(kMu).unsqueeze(0); }

// Exact std of the sampler output for x_T ~ N(0, 1): u = x - sqrt(abar) mu evolves as
// u' = k u + sigma z with x0_hat - mu = g u, g = sqrt(abar) s^2 / D, D = abar s^2 + 1 - abar.
// ddpm: k = c0 g + ct (posterior-mean coefficients, Ho et al. eq. 7); ddim: k = sqrt(abar')
// g + sqrt(1 - abar' - sigma^2) sqrt(1 - abar) / D (Song et al. eq. 12).
enum class Kind { DdpmBeta, DdpmBetaTilde, Ddim };
double predicted_std(const NoiseSchedule& sched, const std::vector<int64_t>& ts, Kind kind,
                     double eta = 0.0) {
  double var = 1.0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const double a = sched.alpha_bar(ts[i]);
    const double ap = i + 1 < ts.size() ? sched.alpha_bar(ts[i + 1]) : 1.0;
    const double D = a * kS * kS + 1 - a, g = std::sqrt(a) * kS * kS / D;
    const double beta = 1 - a / ap;
    double k = 0.0, noise_var = 0.0;
    if (kind == Kind::Ddim) {
      const double sig2 = eta * eta * (1 - ap) / (1 - a) * (1 - a / ap);
      k = std::sqrt(ap) * g + std::sqrt(std::max(1 - ap - sig2, 0.0)) * std::sqrt(1 - a) / D;
      noise_var = sig2;
    } else {
      k = std::sqrt(ap) * beta / (1 - a) * g + std::sqrt(1 - beta) * (1 - ap) / (1 - a);
      if (i + 1 < ts.size()) noise_var = kind == Kind::DdpmBeta ? beta : beta * (1 - ap) / (1 - a);
    }
    var = k * k * var + noise_var;
  }
  return std::sqrt(var);
}

// mean within 6 standard errors of mu; std within 4 % of the exact discretised value, and
// that value within `std_tol` of s.
void expect_gaussian(const torch::Tensor& x, const torch::Tensor& mu, double expected_std,
                     double std_tol, const std::string& what) {
  auto mean = x.mean(0), std = x.std(0);
  const double mean_err = (mean - mu.squeeze(0)).abs().max().item<double>();
  const double std_err = (std - expected_std).abs().max().item<double>();
  std::cout << "  " << what << ": max |mean - mu| = " << mean_err << ", exact std " << expected_std
            << " (s = " << kS << "), max |std - exact| = " << std_err << "\n";
  EXPECT_LT(mean_err, 6 * kS / std::sqrt(double(x.size(0)))) << what;
  EXPECT_LT(std_err, 0.02 * kS) << what;
  EXPECT_LT(std::abs(expected_std - kS), std_tol) << what;
}

TEST(GaussianData, DdpmBothVariancesAllParameterisations) {
  auto sched = linear_schedule(1000);
  auto ts = respace_timesteps(1000, 1000, Spacing::Linspace);
  torch::manual_seed(0);
  auto x_T = torch::randn({kN, 3});
  for (auto var : {DdpmVariance::Beta, DdpmVariance::BetaTilde}) {
    torch::Tensor ref;
    for (auto p : {Prediction::Eps, Prediction::X0, Prediction::V}) {
      Denoiser d(analytic_net(sched, mu_tensor(), p), p, sched);
      torch::Generator gen = at::detail::createCPUGenerator(123);
      int64_t last = 0;
      auto x = sample_ddpm(d, x_T.clone(), ts, var, {}, gen,
                           [&](int64_t i, int64_t total) { last = i * 10000 + total; });
      EXPECT_EQ(last, 1000 * 10000 + 1000);
      const double exact = predicted_std(
          sched, ts, var == DdpmVariance::Beta ? Kind::DdpmBeta : Kind::DdpmBetaTilde);
      expect_gaussian(x, mu_tensor(), exact, 0.03 * kS,
                      std::string("ddpm ") + (var == DdpmVariance::Beta ? "beta" : "beta_tilde") +
                          " " + to_string(p));
      if (!ref.defined()) {
        ref = x;
      } else {  // same noise stream: parameterisations drive the sampler identically
        EXPECT_LT((x - ref).abs().max().item<double>(), 2e-3) << to_string(p);
      }
    }
  }
}

TEST(GaussianData, DdimEtaAndSpacings) {
  auto sched = linear_schedule(1000);
  torch::manual_seed(1);
  auto x_T = torch::randn({kN, 3});
  for (auto sp : {Spacing::Trailing, Spacing::Linspace}) {
    auto ts = respace_timesteps(1000, 50, sp);
    for (double eta : {0.0, 1.0}) {
      torch::Tensor ref;
      for (auto p : {Prediction::Eps, Prediction::X0, Prediction::V}) {
        Denoiser d(analytic_net(sched, mu_tensor(), p), p, sched);
        torch::Generator gen = at::detail::createCPUGenerator(7);
        auto x = sample_ddim(d, x_T.clone(), ts, eta, {}, gen);
        expect_gaussian(
            x, mu_tensor(), predicted_std(sched, ts, Kind::Ddim, eta), 0.2 * kS,
            "ddim " + to_string(sp) + " eta=" + std::to_string(eta) + " " + to_string(p));
        if (!ref.defined()) {
          ref = x;
        } else {
          EXPECT_LT((x - ref).abs().max().item<double>(), 2e-3) << to_string(p);
        }
      }
    }
  }
}

TEST(GaussianData, CosineScheduleFewDdpmSteps) {
  // respaced DDPM (Nichol & Dhariwal 2021 Sec. 4): 100 of 1000 cosine steps
  auto sched = cosine_schedule(1000);
  Denoiser d(analytic_net(sched, mu_tensor(), Prediction::Eps), Prediction::Eps, sched);
  torch::manual_seed(2);
  auto ts = respace_timesteps(1000, 100, Spacing::Trailing);
  auto x = sample_ddpm(d, torch::randn({kN, 3}), ts, DdpmVariance::BetaTilde);
  expect_gaussian(x, mu_tensor(), predicted_std(sched, ts, Kind::DdpmBetaTilde), 0.1 * kS,
                  "ddpm cosine 100 steps beta_tilde");
}

TEST(GaussianData, DdimEta0IsDeterministic) {
  auto sched = linear_schedule(1000);
  Denoiser d(analytic_net(sched, mu_tensor(), Prediction::Eps), Prediction::Eps, sched);
  auto ts = respace_timesteps(1000, 50, Spacing::Trailing);
  torch::manual_seed(3);
  auto x_T = torch::randn({1000, 3});
  auto a = sample_ddim(d, x_T.clone(), ts, 0.0);
  torch::randn({17});  // disturb the default generator: eta = 0 must not use it
  auto b = sample_ddim(d, x_T.clone(), ts, 0.0);
  EXPECT_TRUE(torch::equal(a, b));
  // with eta > 0 the generator decides: same seed -> same samples, different seed -> different
  auto c1 = sample_ddim(d, x_T.clone(), ts, 1.0, {}, at::detail::createCPUGenerator(5));
  auto c2 = sample_ddim(d, x_T.clone(), ts, 1.0, {}, at::detail::createCPUGenerator(5));
  auto c3 = sample_ddim(d, x_T.clone(), ts, 1.0, {}, at::detail::createCPUGenerator(6));
  EXPECT_TRUE(torch::equal(c1, c2));
  EXPECT_FALSE(torch::equal(c1, c3));
}

TEST(GaussianData, ClassConditionalAndGuidance) {
  // two classes, means mu0 / mu1, same s; null class 2 = the class-0 mean (any choice works
  // for w = 1, which must reproduce the conditional distribution exactly)
  auto sched = linear_schedule(1000);
  auto mus = torch::tensor({0.5f, -0.3f, 0.2f, -0.6f, 0.4f, 0.0f, 0.0f, 0.0f, 0.0f}).view({3, 3});
  Denoiser d(analytic_net(sched, mus, Prediction::V), Prediction::V, sched);
  auto ts = respace_timesteps(1000, 50, Spacing::Trailing);
  torch::manual_seed(4);
  auto x_T = torch::randn({kN, 3});
  const double exact = predicted_std(sched, ts, Kind::Ddim);
  for (int64_t k : {0, 1}) {
    Conditioning cond{torch::full({kN}, k, torch::kLong), 1.0, 2};
    expect_gaussian(sample_ddim(d, x_T.clone(), ts, 0.0, cond), mus[k].unsqueeze(0), exact,
                    0.2 * kS, "ddim class " + std::to_string(k));
  }
  // guidance w with Gaussian class/null predictors: eps_w is the optimal eps of
  // N(mu_w, s^2) with mu_w = mu_null + w (mu_k - mu_null) (eps* is affine in mu)
  const double w = 2.0;
  Conditioning cond{torch::full({kN}, int64_t{1}, torch::kLong), w, 2};
  auto mu_w = (mus[2] + w * (mus[1] - mus[2])).unsqueeze(0);
  expect_gaussian(sample_ddim(d, x_T.clone(), ts, 0.0, cond), mu_w, exact, 0.2 * kS,
                  "ddim guided w=2");
}

}  // namespace

TEST(GaussianData, GradientGuidanceSamplesTheTiltedGaussian) {
  // Classifier / CLIP guidance (Dhariwal & Nichol 2021, eq. 14) with the exact gradient: tilting
  // N(mu, s^2) by exp(b . x0) gives N(mu + s^2 b, s^2), whose marginal at t is
  // N(sqrt(abar) (mu + s^2 b), D), D = abar s^2 + 1 - abar; its score minus the data's is the
  // constant sqrt(abar) s^2 b / D. With that gradient every parameterisation must sample the
  // tilted Gaussian; the variance recursion is the unguided one (the shift is constant in x_t).
  auto sched = linear_schedule(1000);
  const torch::Tensor b = torch::tensor({2.0f, -1.0f, 0.5f}).unsqueeze(0);
  const torch::Tensor tilted = mu_tensor() + kS * kS * b;
  Conditioning cond;
  cond.gradient_guide = [b](const torch::Tensor& x, const torch::Tensor& sigma) {
    const torch::Tensor abar = (1.0 / (1.0 + sigma * sigma)).view({-1, 1});
    const torch::Tensor D = abar * kS * kS + 1 - abar;
    return (torch::sqrt(abar) * kS * kS * b / D).expand_as(x).contiguous();
  };
  auto ts = respace_timesteps(1000, 50, Spacing::Trailing);
  torch::manual_seed(4);
  auto x_T = torch::randn({kN, 3});
  for (auto p : {Prediction::Eps, Prediction::X0, Prediction::V}) {
    Denoiser d(analytic_net(sched, mu_tensor(), p), p, sched);
    auto x = sample_ddim(d, x_T.clone(), ts, 0.0, cond);
    expect_gaussian(x, tilted, predicted_std(sched, ts, Kind::Ddim), 0.2 * kS,
                    "ddim guided " + to_string(p));
  }
  // Without the guide the same sampler returns the data's own mean.
  Denoiser d(analytic_net(sched, mu_tensor(), Prediction::Eps), Prediction::Eps, sched);
  auto plain = sample_ddim(d, x_T.clone(), ts, 0.0);
  EXPECT_LT((plain.mean(0) - mu_tensor().squeeze(0)).abs().max().item<double>(), 0.01);
}
