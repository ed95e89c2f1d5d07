// Parameterisation round trips (Ho et al. 2020 eq. 4; Salimans & Ho 2022 Sec. 4), the Denoiser's
// classifier-free guidance (Ho & Salimans 2022 eq. 6) and the simple loss (Ho et al. 2020 eq. 14).
#include <gtest/gtest.h>

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/diffusion/denoiser.h"
#include "genmodels/diffusion/loss.h"

namespace {

using namespace gm::diffusion;

TEST(Conversions, RoundTrips) {
  torch::manual_seed(0);
  auto x0 = torch::randn({64, 3});
  auto eps = torch::randn({64, 3});
  auto abar = torch::rand({64, 1}) * 0.98 + 0.01;
  auto xt = torch::sqrt(abar) * x0 + torch::sqrt(1 - abar) * eps;
  const double tol = 1e-5;
  EXPECT_TRUE(torch::allclose(eps_to_x0(xt, eps, abar), x0, tol, tol));
  EXPECT_TRUE(torch::allclose(x0_to_eps(xt, x0, abar), eps, tol, tol));
  auto v = velocity(x0, eps, abar);
  EXPECT_TRUE(torch::allclose(eps_to_v(xt, eps, abar), v, tol, tol));
  EXPECT_TRUE(torch::allclose(v_to_eps(xt, v, abar), eps, tol, tol));
  EXPECT_TRUE(torch::allclose(v_to_x0(xt, v, abar), x0, tol, tol));
  auto score = eps_to_score(eps, abar);
  EXPECT_TRUE(torch::allclose(score, -eps / torch::sqrt(1 - abar), tol, tol));
  EXPECT_TRUE(torch::allclose(score_to_eps(score, abar), eps, tol, tol));
  // eps -> x0 -> eps -> v -> eps -> score -> eps chain
  auto e2 = score_to_eps(
      eps_to_score(
          v_to_eps(xt, eps_to_v(xt, x0_to_eps(xt, eps_to_x0(xt, eps, abar), abar), abar), abar),
          abar),
      abar);
  EXPECT_TRUE(torch::allclose(e2, eps, tol, tol));
}

TEST(Conversions, ParseNames) {
  for (auto p : {Prediction::Eps, Prediction::X0, Prediction::V}) {
    EXPECT_EQ(parse_prediction(to_string(p)), p);
  }
  EXPECT_THROW(parse_prediction("score"), gm::Error);
}

// Toy net: out = x + y (labels as float; undefined labels -> -10) + t / 1000; counts calls.
struct ToyNet {
  int* calls;
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& t,
                           const torch::Tensor& y) const {
    ++*calls;
    auto yy = y.defined() ? y.to(torch::kFloat) : torch::full({x.size(0)}, -10.0f);
    return x + yy.view({-1, 1}) + t.view({-1, 1}) / 1000.0;
  }
};

TEST(Denoiser, ClassifierFreeGuidanceFormula) {
  int calls = 0;
  Denoiser d(ToyNet{&calls}, Prediction::Eps, linear_schedule(1000));
  auto x = torch::randn({4, 2});
  auto t = torch::tensor({1.0f, 10.0f, 100.0f, 999.0f});
  auto labels = torch::tensor({0, 1, 2, 1}, torch::kLong);
  const int64_t null = 3;
  ToyNet net{&calls};
  auto cond = net(x, t, labels), uncond = net(x, t, torch::full({4}, null, torch::kLong));
  calls = 0;
  auto guided = d.eps(x, t, {labels, 3.0, null});
  EXPECT_EQ(calls, 1);  // both halves in one batched call
  EXPECT_TRUE(torch::allclose(guided, uncond + 3.0 * (cond - uncond), 1e-5, 1e-5));
  // guidance 1 -> conditional only
  EXPECT_TRUE(torch::allclose(d.eps(x, t, {labels, 1.0, null}), cond));
  // no labels -> null label if given, else y undefined
  EXPECT_TRUE(torch::allclose(d.eps(x, t, {torch::Tensor(), 5.0, null}), uncond));
  EXPECT_TRUE(torch::allclose(d.eps(x, t), net(x, t, torch::Tensor())));
  // guidance without a null label is an error
  EXPECT_THROW(d.eps(x, t, {labels, 2.0, -1}), gm::Error);
  // 0-d t is broadcast
  EXPECT_TRUE(torch::allclose(d.eps(x, torch::tensor(5.0f)), net(x, torch::full({4}, 5.0f), {})));
}

TEST(Denoiser, ParameterisationsAgree) {
  // One eps function exposed in eps, x0 and v form must give identical eps/x0/score.
  auto sched = linear_schedule(1000);
  auto eps_fn = [](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor&) {
    return torch::tanh(x) * (t.view({-1, 1}) / 1000.0 + 0.5);
  };
  auto abar_of = [sched](const torch::Tensor& t) {
    return alpha_bar_at(sched, t).to(torch::kFloat).view({-1, 1});
  };
  NetFn as_x0 = [=](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) {
    return eps_to_x0(x, eps_fn(x, t, y), abar_of(t));
  };
  NetFn as_v = [=](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) {
    return eps_to_v(x, eps_fn(x, t, y), abar_of(t));
  };
  Denoiser de(eps_fn, Prediction::Eps, sched), dx(as_x0, Prediction::X0, sched),
      dv(as_v, Prediction::V, sched);
  auto x = torch::randn({8, 2});
  auto t = torch::tensor({0.f, 1.f, 10.f, 100.f, 300.5f, 500.f, 900.f, 990.f});
  for (const Denoiser* d : {&dx, &dv}) {
    EXPECT_TRUE(torch::allclose(d->eps(x, t), de.eps(x, t), 1e-4, 1e-4));
    EXPECT_TRUE(torch::allclose(d->x0(x, t), de.x0(x, t), 1e-3, 1e-3));
    EXPECT_TRUE(torch::allclose(d->score(x, t), de.score(x, t), 1e-3, 1e-3));
  }
}

TEST(Loss, TargetsAndLabelDropout) {
  auto sched = linear_schedule(1000);
  const int64_t n = 100000;
  auto x0 = torch::full({n, 1}, 0.5);
  auto zero_net = [](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) {
    return torch::zeros_like(x);
  };
  torch::manual_seed(0);
  // zero prediction: E[eps^2] = 1, E[x0^2] = 0.25, E[v^2] = E[abar] + 0.25 E[1 - abar]
  auto l_eps = diffusion_loss(zero_net, sched, x0, {}, {Prediction::Eps, 0.0, -1}).item<double>();
  auto l_x0 = diffusion_loss(zero_net, sched, x0, {}, {Prediction::X0, 0.0, -1}).item<double>();
  auto l_v = diffusion_loss(zero_net, sched, x0, {}, {Prediction::V, 0.0, -1}).item<double>();
  const double mean_abar = sched.alphas_cumprod.mean().item<double>();
  EXPECT_NEAR(l_eps, 1.0, 0.02);
  EXPECT_NEAR(l_x0, 0.25, 1e-6);
  EXPECT_NEAR(l_v, mean_abar + 0.25 * (1 - mean_abar), 0.02);

  // label dropout: the fraction of null labels seen by the net is class_dropout
  torch::Tensor seen;
  NetFn spy = [&](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor& y) {
    seen = y;
    return torch::zeros_like(x);
  };
  auto labels = torch::randint(0, 10, {n}, torch::kLong);
  diffusion_loss(spy, sched, x0, labels, {Prediction::Eps, 0.25, 10});
  ASSERT_TRUE(seen.defined());
  const double frac = (seen == 10).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(frac, 0.25, 0.01);
  EXPECT_TRUE(torch::equal(seen.masked_select(seen != 10), labels.masked_select(seen != 10)));
  EXPECT_THROW(diffusion_loss(spy, sched, x0, labels, {Prediction::Eps, 0.25, -1}), gm::Error);

  // reproducible from the default generator
  torch::manual_seed(7);
  auto a = diffusion_loss(zero_net, sched, x0, {}, {}).item<double>();
  torch::manual_seed(7);
  auto b = diffusion_loss(zero_net, sched, x0, {}, {}).item<double>();
  EXPECT_EQ(a, b);
}

TEST(Loss, PerfectEpsNetHasZeroLossAndGradients) {
  // net that recovers eps exactly when told x0 (constant data): x0_to_eps is the optimum
  auto sched = linear_schedule(1000);
  auto x0 = torch::full({256, 2}, 0.3);
  NetFn oracle = [&](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor&) {
    return x0_to_eps(x, x0, alpha_bar_at(sched, t).to(torch::kFloat).view({-1, 1}));
  };
  torch::manual_seed(1);
  EXPECT_LT(diffusion_loss(oracle, sched, x0, {}, {Prediction::Eps, 0.0, -1}).item<double>(), 1e-8);
  auto w = torch::ones({1}, torch::requires_grad());
  NetFn scaled = [&](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) {
    return x * w;
  };
  auto l = diffusion_loss(scaled, sched, x0, {}, {Prediction::Eps, 0.0, -1});
  l.backward();
  EXPECT_TRUE(w.grad().defined());
}

}  // namespace
