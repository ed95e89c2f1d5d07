// The probability-flow ODE likelihood (score/likelihood.h) against closed forms: for Gaussian data
// N(mu, s^2 I) and its exact denoiser, log p at sigma_min is log N(x; mu, (s^2 + sigma_min^2) I);
// Hutchinson's estimator averages to the exact trace; the Hutchinson likelihood averages to the
// exact one.
#include <gtest/gtest.h>

#include <cmath>

#include "gaussian_oracle.h"
#include "genmodels/score/likelihood.h"
#include "test_util.h"

namespace {

using namespace gm;

TEST(Likelihood, HutchinsonIsUnbiasedAndExactTraceIsExact) {
  torch::manual_seed(5);
  const torch::Tensor A = torch::randn({8, 8}, torch::kDouble);
  auto fn = [&](const torch::Tensor& x) { return torch::mm(x, A.t()); };
  const int64_t n = 20000;
  const torch::Tensor x = torch::randn({n, 8}, torch::kDouble);
  at::Generator gen = at::detail::createCPUGenerator(1);
  const torch::Tensor z = score::rademacher_like(x, gen);
  EXPECT_TRUE(((z == 1) | (z == -1)).all().item<bool>());
  const torch::Tensor est = score::jacobian_trace(fn, x, z, false);
  const double trace = A.trace().item<double>();
  const double se = est.std().item<double>() / std::sqrt(double(n));
  std::cout << "Hutchinson mean " << est.mean().item<double>() << " +- " << se << ", trace "
            << trace << "\n";
  EXPECT_NEAR(est.mean().item<double>(), trace, 4 * se);
  EXPECT_GT(se, 0.0);  // single probes do vary
  const torch::Tensor exact = score::jacobian_trace(fn, x.narrow(0, 0, 3), {}, true);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(exact[i].item<double>(), trace, 1e-9);
}

struct GaussianModel {
  static constexpr double kS = 0.5;
  torch::Tensor mu = torch::tensor({0.3, -0.2, 0.1, 0.4}, torch::kFloat);
  diffusion::NoiseSchedule sched = diffusion::cosine_schedule(1000);
  diffusion::Denoiser d{test::gaussian_net(sched, mu, kS, diffusion::Prediction::Eps),
                        diffusion::Prediction::Eps, sched};
  // log N(x; mu, (s^2 + sigma^2) I) per row.
  torch::Tensor closed_form(const torch::Tensor& x, double sigma) const {
    const double var = kS * kS + sigma * sigma;
    const auto sq = (x.to(torch::kDouble) - mu.to(torch::kDouble)).square().sum(1);
    return -0.5 * double(x.size(1)) * std::log(2 * M_PI * var) - 0.5 * sq / var;
  }
};

TEST(Likelihood, OdeLikelihoodOfGaussianDataEqualsTheClosedForm) {
  GaussianModel g;
  torch::manual_seed(6);
  const torch::Tensor x = g.mu + GaussianModel::kS * torch::randn({16, 4});
  score::LikelihoodOptions o;
  o.exact_trace = true;
  const auto r = score::ode_log_likelihood(g.d, x, {}, {}, o);
  const torch::Tensor want = g.closed_form(x, g.d.sigma_min());
  const double err = (r.log_p - want).abs().max().item<double>();
  std::cout << "ODE log p vs closed form: max error " << err << " nats, " << r.nfe
            << " evaluations\n";
  EXPECT_LT(err, 2e-3);
  EXPECT_GT(r.nfe, 10);
  // Over a shorter range with the exact prior of that range.
  o.sigma_max = 3.0;
  o.prior_var = 3.0 * 3.0;  // N(0, 9 I) is not the marginal: the answer must move by the gap
  const auto r2 = score::ode_log_likelihood(g.d, x, {}, {}, o);
  o.prior_var = 0.0;
  const auto r3 = score::ode_log_likelihood(g.d, x, {}, {}, o);
  EXPECT_GT((r2.log_p - r3.log_p).abs().max().item<double>(), 1e-3);
  EXPECT_LT((r2.delta - r3.delta).abs().max().item<double>(), 1e-9);

  // Hutchinson probes: unbiased, so the mean over many rows matches the exact mean.
  const torch::Tensor xs = g.mu + GaussianModel::kS * torch::randn({400, 4});
  at::Generator gen = at::detail::createCPUGenerator(2);
  score::LikelihoodOptions h;
  const auto rh = score::ode_log_likelihood(g.d, xs, {}, score::rademacher_like(xs, gen), h);
  const torch::Tensor diff = rh.log_p - g.closed_form(xs, g.d.sigma_min());
  const double se = diff.std().item<double>() / std::sqrt(400.0);
  std::cout << "Hutchinson ODE log p - exact: mean " << diff.mean().item<double>() << " +- " << se
            << "\n";
  // (Isotropic data makes J_D a multiple of I, where a Rademacher probe is exact: z^T c I z =
  // c dim; the estimator's noise is tested on the random linear map above.)
  EXPECT_NEAR(diff.mean().item<double>(), 0.0, 4 * se + 1e-3);
}

TEST(Likelihood, BadInput) {
  GaussianModel g;
  const torch::Tensor x = torch::zeros({2, 4});
  EXPECT_NE(test::error_of([&] { score::ode_log_likelihood(g.d, x, {}, {}, {}); }).find("probe"),
            std::string::npos);
  score::LikelihoodOptions o;
  o.exact_trace = true;
  o.sigma_max = 1e9;
  EXPECT_NE(test::error_of([&] { score::ode_log_likelihood(g.d, x, {}, {}, o); }).find("range"),
            std::string::npos);
}

}  // namespace

// The Bayes-optimal denoiser of Gaussian data reaches the posterior variance s^2 sigma^2 /
// (s^2 + sigma^2) per dimension at every level.
namespace {
TEST(Likelihood, DenoisingErrorOfTheExactDenoiserIsThePosteriorVariance) {
  GaussianModel g;
  torch::manual_seed(8);
  const torch::Tensor x = g.mu + GaussianModel::kS * torch::randn({20000, 4});
  at::Generator gen = at::detail::createCPUGenerator(3);
  const auto levels = score::log_spaced(0.05, 5.0, 3);
  ASSERT_EQ(levels.size(), 3u);
  EXPECT_NEAR(levels[1], 0.5, 1e-12);
  const auto errs = score::denoising_error(g.d, x, {}, levels, gen);
  ASSERT_EQ(errs.size(), 3u);
  for (const auto& e : errs) {
    const double s2 = GaussianModel::kS * GaussianModel::kS;
    const double want = s2 * e.sigma * e.sigma / (s2 + e.sigma * e.sigma);
    std::cout << "  sigma " << e.sigma << ": mse_x0 " << e.mse_x0 << " (posterior var " << want
              << ")\n";
    EXPECT_NEAR(e.mse_x0 / want, 1.0, 0.03) << e.sigma;  // 80,000 squared errors: ~0.5 % noise
    EXPECT_NEAR(e.mse_eps, e.mse_x0 / (e.sigma * e.sigma), 1e-12);
  }
}
}  // namespace
