// Noise schedules against their closed forms (Ho et al. 2020 Sec. 4; Nichol & Dhariwal 2021
// eq. 17) and the moments of q(x_t | x_0) (Ho et al. 2020 eq. 4).
#include <gtest/gtest.h>

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/diffusion/schedule.h"

namespace {

using namespace gm::diffusion;

void expect_valid_abar(const NoiseSchedule& s) {
  const int64_t T = s.num_steps();
  for (int64_t t = 0; t < T; ++t) {
    const double a = s.alpha_bar(t);
    EXPECT_GT(a, 0.0) << s.name << " t=" << t;
    EXPECT_LT(a, 1.0) << s.name << " t=" << t;
    if (t > 0) {
      EXPECT_LT(a, s.alpha_bar(t - 1)) << s.name << " t=" << t;
    }
  }
  EXPECT_EQ(s.betas.scalar_type(), torch::kDouble);
  EXPECT_EQ(s.alphas_cumprod.scalar_type(), torch::kDouble);
  EXPECT_EQ(s.betas.size(0), T);
}

TEST(Schedule, LinearMatchesIndependentProduct) {
  auto s = linear_schedule(1000);
  ASSERT_EQ(s.num_steps(), 1000);
  double prod = 1.0;
  for (int i = 0; i < 1000; ++i) {
    const double beta = 1e-4 + (0.02 - 1e-4) * i / 999.0;
    EXPECT_NEAR(s.betas[i].item<double>(), beta, 1e-12);
    prod *= 1.0 - beta;
    EXPECT_NEAR(s.alpha_bar(i), prod, 1e-12 + 1e-9 * prod);
  }
  EXPECT_NEAR(s.alpha_bar(999), 4.036e-5, 0.01e-5);  // the well-known abar_T of DDPM
  expect_valid_abar(s);
  // T != 1000 scales betas by 1000/T (improved-diffusion)
  auto s100 = linear_schedule(100);
  EXPECT_NEAR(s100.betas[0].item<double>(), 1e-3, 1e-12);
  EXPECT_NEAR(s100.betas[99].item<double>(), 0.2, 1e-12);
  expect_valid_abar(s100);
}

TEST(Schedule, CosineMatchesFormula) {
  const int64_t T = 1000;
  const double so = 0.008;
  auto s = cosine_schedule(T, so, 0.999);
  auto f = [&](double u) {
    const double c = std::cos((u + so) / (1.0 + so) * M_PI / 2.0);
    return c * c;
  };
  for (int64_t t = 0; t < T; ++t) {
    EXPECT_LE(s.betas[t].item<double>(), 0.999);
    if (s.betas[t].item<double>() < 0.999) {  // unclipped steps follow eq. 17 exactly
      EXPECT_NEAR(s.alpha_bar(t), f(double(t + 1) / T) / f(0.0), 1e-9) << "t=" << t;
    }
  }
  EXPECT_NEAR(s.betas[T - 1].item<double>(), 0.999, 1e-12);  // f(1) = 0 -> clipped
  expect_valid_abar(s);
  expect_valid_abar(cosine_schedule(50));
}

TEST(Schedule, ByNameAndErrors) {
  EXPECT_EQ(make_schedule("cosine", 10).name, "cosine");
  EXPECT_EQ(make_schedule("linear", 100).name, "linear");
  EXPECT_EQ(schedule_names().size(), 2u);
  try {
    make_schedule("quadratic", 10);
    FAIL() << "no throw";
  } catch (const gm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("linear, cosine"), std::string::npos) << e.what();
  }
  EXPECT_THROW(linear_schedule(0), gm::Error);
  EXPECT_THROW(linear_schedule(10), gm::Error);  // 0.02 * 100 >= 1
  EXPECT_THROW(linear_schedule(1000).alpha_bar(1000), gm::Error);
}

TEST(Schedule, AlphaBarAtInterpolates) {
  auto s = linear_schedule(1000);
  auto a = alpha_bar_at(s, torch::tensor({0.0, 10.0, 10.25, 999.0}));
  EXPECT_DOUBLE_EQ(a[0].item<double>(), s.alpha_bar(0));
  EXPECT_DOUBLE_EQ(a[1].item<double>(), s.alpha_bar(10));
  EXPECT_NEAR(a[2].item<double>(), 0.75 * s.alpha_bar(10) + 0.25 * s.alpha_bar(11), 1e-12);
  EXPECT_DOUBLE_EQ(a[3].item<double>(), s.alpha_bar(999));
  EXPECT_THROW(alpha_bar_at(s, torch::tensor({999.5})), gm::Error);
  EXPECT_THROW(alpha_bar_at(s, torch::tensor({-1})), gm::Error);
}

TEST(Schedule, QSampleMoments) {
  torch::manual_seed(0);
  auto s = linear_schedule(1000);
  const double c = 0.7;
  const int64_t n = 200000;
  for (int64_t t : {0, 100, 500, 999}) {
    auto x0 = torch::full({n, 1}, c);
    auto ts = torch::full({n}, t, torch::kLong);
    auto xt = q_sample(s, x0, ts, torch::randn_like(x0));
    const double a = s.alpha_bar(t);
    EXPECT_NEAR(xt.mean().item<double>(), std::sqrt(a) * c, 0.01) << "t=" << t;
    EXPECT_NEAR(xt.var().item<double>(), 1.0 - a, 0.01 * (1.0 - a) + 1e-6) << "t=" << t;
  }
  // per-sample timesteps broadcast over image dimensions
  auto x0 = torch::ones({2, 3, 4, 4});
  auto xt = q_sample(s, x0, torch::tensor({0, 999}, torch::kLong), torch::zeros_like(x0));
  EXPECT_NEAR(xt[0].mean().item<double>(), std::sqrt(s.alpha_bar(0)), 1e-6);
  EXPECT_NEAR(xt[1].mean().item<double>(), std::sqrt(s.alpha_bar(999)), 1e-6);
  EXPECT_THROW(q_sample(s, x0, torch::tensor({0}, torch::kLong), x0), gm::Error);
}

}  // namespace
