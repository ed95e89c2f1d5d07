// The forward SDEs of score/sde.h against their closed forms: Euler-Maruyama paths of dx = f x dt
// + g dw reproduce the kernel's mean m(t) x0 and std s(t); sigma(t) and t_at_sigma are inverse;
// the discretised schedule holds sigma(t_i); and, with the exact score of Gaussian data, the
// reverse SDE (Song et al. 2021 eq. 6) and the probability-flow ODE (eq. 13) carry the marginal
// at t = 1 back to the data distribution, the ODE along its closed-form path.
#include <gtest/gtest.h>

#include <cmath>

#include "genmodels/score/sde.h"
#include "test_util.h"

namespace {

using namespace gm::score;

std::vector<std::unique_ptr<Sde>> all_sdes() {
  std::vector<std::unique_ptr<Sde>> v;
  SdeOptions o;
  for (const auto& name : sde_names()) v.push_back(make_sde(name, o));
  return v;
}

TEST(Sde, ForwardPathsMatchTheKernel) {
  torch::manual_seed(0);
  const double x0 = 0.7;
  const int64_t n = 20000, steps = 2000;
  for (const auto& sde : all_sdes()) {
    torch::Tensor x = torch::full({n}, x0, torch::kDouble);
    const double dt = 1.0 / steps;
    for (int64_t i = 0; i < steps; ++i) {
      const double t = i * dt;
      x = x + sde->drift_coef(t) * x * dt +
          sde->diffusion(t) * std::sqrt(dt) * torch::randn_like(x);
      if (i + 1 == steps / 2 || i + 1 == steps) {
        const double te = (i + 1) * dt;
        const double mean = x.mean().item<double>(), sd = x.std().item<double>();
        SCOPED_TRACE(sde->name() + " t = " + std::to_string(te));
        EXPECT_NEAR(mean, sde->mean_coef(te) * x0, 0.02 * sde->std(te) + 1e-3);
        EXPECT_NEAR(sd / sde->std(te), 1.0, 0.02);
      }
    }
  }
}

TEST(Sde, SigmaInverseAndDiscretisation) {
  for (const auto& sde : all_sdes()) {
    for (double t : {1e-5, 1e-3, 0.1, 0.5, 0.9, 1.0})
      EXPECT_NEAR(sde->t_at_sigma(sde->sigma(t)), t, 1e-9 + 1e-7 * t) << sde->name() << " " << t;
    const auto sched = discretize(*sde, 100);
    const auto idx = torch::tensor({0.0, 17.0, 99.0}, torch::kDouble);
    const auto t = t_at_index(*sde, sched, idx);
    for (int i = 0; i < 3; ++i) {
      const double ti = sde->t_min() + (1 - sde->t_min()) * idx[i].item<double>() / 99.0;
      EXPECT_NEAR(t[i].item<double>(), ti, 1e-7) << sde->name();
    }
  }
  // VE's sigma is its std; VP's kernel has unit total variance for unit data; sub-VP's std is
  // below VP's at every t.
  SdeOptions o;
  auto ve = make_sde("ve", o), vp = make_sde("vp", o), sub = make_sde("subvp", o);
  EXPECT_NEAR(ve->sigma(0.3), 0.01 * std::pow(5000.0, 0.3), 1e-9);
  for (double t : {0.1, 0.5, 1.0}) {
    EXPECT_NEAR(vp->marginal_std(t, 1.0), 1.0, 1e-12);
    EXPECT_LT(sub->std(t), vp->std(t));
  }
  EXPECT_NE(gm::test::error_of([] { make_sde("vx", SdeOptions{}); }).find("ve, vp, subvp"),
            std::string::npos);
  EXPECT_NE(gm::test::error_of([] { ve_sde(1.0, 0.5); }).find("sde.sigma_min"), std::string::npos);
}

// Data N(mu, s0^2) per coordinate: p_t = N(m mu, m^2 s0^2 + s^2), score -(x - m mu) / var(t).
TEST(Sde, ReverseSdeAndOdeWithTheExactScoreRecoverGaussianData) {
  torch::manual_seed(1);
  const double mu = 0.4, s0 = 0.3;
  const int64_t n = 20000, steps = 1000;
  for (const auto& sde : all_sdes()) {
    auto var = [&](double t) { return std::pow(sde->marginal_std(t, s0), 2); };
    auto score = [&](const torch::Tensor& x, double t) {
      return -(x - sde->mean_coef(t) * mu) / var(t);
    };
    const double t1 = 1.0, t0 = sde->t_min();
    const torch::Tensor x1 =
        sde->mean_coef(t1) * mu + std::sqrt(var(t1)) * torch::randn({n}, torch::kDouble);
    torch::Tensor xs = x1.clone(), xo = x1.clone();
    const double dt = (t1 - t0) / steps;
    for (int64_t i = 0; i < steps; ++i) {
      const double t = t1 - i * dt;
      xs = xs - reverse_sde_drift(*sde, xs, score(xs, t), t) * dt +
           sde->diffusion(t) * std::sqrt(dt) * torch::randn_like(xs);
      // Heun on the ODE: second order keeps the path within 1e-3 of the exact one.
      const torch::Tensor k1 = ode_drift(*sde, xo, score(xo, t), t);
      const torch::Tensor xe = xo - k1 * dt;
      const torch::Tensor k2 = ode_drift(*sde, xe, score(xe, t - dt), t - dt);
      xo = xo - 0.5 * (k1 + k2) * dt;
    }
    SCOPED_TRACE(sde->name());
    const double sd0 = std::sqrt(var(t0));  // the data at t0 (s0 plus the kernel's tiny std)
    EXPECT_NEAR(xs.mean().item<double>(), mu, 0.01);
    EXPECT_NEAR(xs.std().item<double>() / sd0, 1.0, 0.03);
    // The ODE's exact path: x(t0) = m0 mu + sqrt(var0 / var1) (x1 - m1 mu).
    const torch::Tensor exact =
        sde->mean_coef(t0) * mu + std::sqrt(var(t0) / var(t1)) * (x1 - sde->mean_coef(t1) * mu);
    EXPECT_LT((xo - exact).abs().max().item<double>(), 2e-3);
  }
}

}  // namespace
