// The sigma view of the VP schedules (Karras et al. 2022, "Elucidating the Design Space of
// Diffusion-Based Generative Models", Table 1 VP column): sigma_at / t_at_sigma are exact inverses,
// D(x; sigma) equals predict's x0 at t and the closed-form denoiser of Gaussian data, and
// classifier-free guidance over embeddings (Ho & Salimans 2022, eq. 6).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "gaussian_oracle.h"
#include "genmodels/core/error.h"
#include "genmodels/diffusion/denoiser.h"
#include "test_util.h"

namespace {

using namespace gm::diffusion;
using gm::test::error_of;

constexpr double kS = 0.3;

NetFn gaussian_net(const NoiseSchedule& sched, torch::Tensor mu, Prediction p) {
  return gm::test::gaussian_net(sched, std::move(mu), kS, p);
}

torch::Tensor max_abs(const torch::Tensor& a) { return a.abs().max(); }

TEST(Sigma, RoundTripAtFractionalT) {
  for (const auto& s : {linear_schedule(1000), cosine_schedule(1000), linear_schedule(100)}) {
    const int64_t T = s.num_steps();
    torch::manual_seed(0);
    auto t =
        torch::cat({torch::tensor({0.0, 0.25, 1.5, 10.0, 10.75, 0.5 * T + 0.123, T - 1.1, T - 1.0}),
                    torch::rand({2000}, torch::kDouble) * (T - 1)});
    auto sigma = sigma_at(s, t);
    ASSERT_EQ(sigma.scalar_type(), torch::kDouble);
    auto a = alpha_bar_at(s, t);
    EXPECT_LT(max_abs(sigma - torch::sqrt((1 - a) / a)).item<double>(), 1e-12);
    auto back = t_at_sigma(s, sigma);
    ASSERT_EQ(back.scalar_type(), torch::kDouble);
    EXPECT_LT(max_abs(back - t).item<double>(), 1e-9) << s.name << " T=" << T;
    // and sigma -> t -> sigma over log-uniform sigmas in range
    auto ls = torch::rand({2000}, torch::kDouble) * std::log(sigma_max(s) / sigma_min(s)) +
              std::log(sigma_min(s));
    auto sig = torch::exp(ls);
    EXPECT_LT(max_abs(sigma_at(s, t_at_sigma(s, sig)) / sig - 1).item<double>(), 1e-10) << s.name;
    // sigma increases strictly with t
    auto table = sigma_at(s, torch::arange(T, torch::kDouble));
    EXPECT_TRUE((table.slice(0, 1) > table.slice(0, 0, T - 1)).all().item<bool>()) << s.name;
  }
}

TEST(Sigma, RangeAndClamping) {
  auto s = linear_schedule(1000);
  const double a0 = s.alpha_bar(0), aT = s.alpha_bar(999);
  EXPECT_DOUBLE_EQ(sigma_min(s), std::sqrt((1 - a0) / a0));
  EXPECT_DOUBLE_EQ(sigma_max(s), std::sqrt((1 - aT) / aT));
  EXPECT_NEAR(sigma_min(s), std::sqrt(1e-4 / (1 - 1e-4)), 1e-12);  // abar_0 = 1 - beta_1
  EXPECT_NEAR(sigma_max(s), 157.4, 0.1);                           // abar_T = 4.036e-5
  auto ends = sigma_at(s, torch::tensor({0.0, 999.0}));
  EXPECT_DOUBLE_EQ(ends[0].item<double>(), sigma_min(s));
  EXPECT_DOUBLE_EQ(ends[1].item<double>(), sigma_max(s));
  auto c = cosine_schedule(1000);
  EXPECT_LT(sigma_min(c), sigma_min(s));  // cosine starts with smaller betas
  EXPECT_GT(sigma_max(c), 1e4);           // and ends at abar ~ 1e-9 (beta clipped at 0.999)

  const double inf = std::numeric_limits<double>::infinity();
  auto t = t_at_sigma(s, torch::tensor({0.0, 0.5 * sigma_min(s), sigma_min(s), sigma_max(s),
                                        2 * sigma_max(s), inf}));
  EXPECT_TRUE(torch::equal(t, torch::tensor({0.0, 0.0, 0.0, 999.0, 999.0, 999.0}))) << t;
  // 0-d and float32 input; result float64 N
  auto t0 = t_at_sigma(s, sigma_at(s, torch::tensor(250.0)).to(torch::kFloat).squeeze());
  ASSERT_EQ(t0.sizes(), torch::IntArrayRef({1}));
  EXPECT_EQ(t0.scalar_type(), torch::kDouble);
  EXPECT_NEAR(t0.item<double>(), 250.0, 1e-3);
  // one-step schedule: every sigma is t = 0
  EXPECT_EQ(t_at_sigma(cosine_schedule(1), torch::tensor({0.1, 10.0})).sum().item<double>(), 0.0);
  // negative or NaN sigma; t outside the schedule
  const auto neg = error_of([&] { t_at_sigma(s, torch::tensor({1.0, -0.5})); });
  EXPECT_NE(neg.find("sigma must be >= 0"), std::string::npos) << neg;
  EXPECT_THROW(t_at_sigma(s, torch::tensor({std::nan("")})), gm::Error);
  EXPECT_THROW(sigma_at(s, torch::tensor({1000.0})), gm::Error);
  EXPECT_THROW(sigma_min(NoiseSchedule{}), gm::Error);
}

TEST(Sigma, DenoiseEqualsPredictAndGaussianOptimum) {
  auto mu = torch::tensor({0.5f, -0.3f, 0.2f}).unsqueeze(0);
  for (const auto& sched : {linear_schedule(1000), cosine_schedule(1000)}) {
    torch::manual_seed(1);
    const int64_t n = 64;
    auto t = torch::rand({n}, torch::kDouble) * 999.0;
    t[0] = 0.0;
    t[1] = 999.0;
    auto abar = alpha_bar_at(sched, t).to(torch::kFloat).view({-1, 1});
    auto x_t = torch::sqrt(abar) * (mu + kS * torch::randn({n, 3})) +
               torch::sqrt(1 - abar) * torch::randn({n, 3});
    auto x = x_t / torch::sqrt(abar);
    auto sigma = sigma_at(sched, t).to(torch::kFloat);
    auto sig = sigma.view({-1, 1});
    // E[x0 | x0 + sigma n = x] for x0 ~ N(mu, s^2): mu + s^2 / (s^2 + sigma^2) (x - mu)
    auto optimum = mu + kS * kS / (kS * kS + sig * sig) * (x - mu);
    for (auto p : {Prediction::Eps, Prediction::X0, Prediction::V}) {
      Denoiser d(gaussian_net(sched, mu, p), p, sched);
      EXPECT_DOUBLE_EQ(d.sigma_min(), sigma_min(sched));
      EXPECT_DOUBLE_EQ(d.sigma_max(), sigma_max(sched));
      auto ref = d.predict(x_t, t);
      auto both = d.denoise2(x, sigma);
      const std::string what = sched.name + " " + to_string(p);
      EXPECT_TRUE(torch::allclose(both.x0, ref.x0, 1e-4, 1e-4)) << what;
      EXPECT_TRUE(torch::allclose(both.eps, ref.eps, 1e-4, 1e-4)) << what;
      // float32 x0 from a noise level sigma loses ~ulp * sigma (cosine sigma_max ~ 2e4)
      auto tol = 1e-4 + 4 * std::numeric_limits<float>::epsilon() * sig;
      EXPECT_TRUE(((both.x0 - optimum).abs() <= tol).all().item<bool>()) << what;
      EXPECT_TRUE(torch::equal(d.denoise(x, sigma), both.x0)) << what;
      EXPECT_TRUE(torch::allclose((x - both.x0) / sig, both.eps, 1e-4, 1e-4)) << what;
      // 0-d sigma applies to every sample
      auto s0 = sigma_at(sched, torch::tensor(321.5)).to(torch::kFloat).squeeze();
      EXPECT_TRUE(torch::equal(d.denoise(x, s0), d.denoise(x, s0.expand({n})))) << what;
    }
  }
}

TEST(Sigma, DenoiseClipAndErrors) {
  auto sched = linear_schedule(1000);
  auto mu = torch::tensor({3.0f, -3.0f}).unsqueeze(0);
  Denoiser d(gaussian_net(sched, mu, Prediction::Eps), Prediction::Eps, sched);
  auto x = torch::randn({8, 2}) + mu;
  auto sigma = torch::full({8}, 0.05f);
  auto clipped = d.denoise2(x, sigma, {}, true);
  EXPECT_LE(clipped.x0.abs().max().item<float>(), 1.0f);
  EXPECT_TRUE(torch::allclose(clipped.eps, (x - clipped.x0) / 0.05f, 1e-3, 1e-3));

  // sigma range: float32 rounding of the end points is accepted, anything further is not
  EXPECT_NO_THROW(d.denoise(x, torch::full({8}, static_cast<float>(d.sigma_min() * (1 - 1e-7)))));
  EXPECT_NO_THROW(d.denoise(x, torch::full({8}, static_cast<float>(d.sigma_max()))));
  const auto low = error_of([&] { d.denoise(x, torch::full({8}, 0.005f)); });
  EXPECT_NE(low.find("outside [sigma_min, sigma_max]"), std::string::npos) << low;
  EXPECT_THROW(d.denoise(x, torch::full({8}, 200.0f)), gm::Error);
  EXPECT_THROW(d.denoise(x, torch::full({8}, 0.0f)), gm::Error);
  const auto shape = error_of([&] { d.denoise(x, torch::full({4}, 1.0f)); });
  EXPECT_NE(shape.find("N = 8"), std::string::npos) << shape;
  EXPECT_THROW(d.denoise(x, torch::ones({8}, torch::kLong)), gm::Error);
}

// Spy: records every y and returns x + y W for an embedding (+ y for labels, -10 for undefined y)
// + t / 1000.
struct Spy {
  std::vector<torch::Tensor>* seen;
  torch::Tensor w;
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& t,
                           const torch::Tensor& y) const {
    seen->push_back(y);
    auto cond = !y.defined()   ? torch::full_like(x, -10.0)
                : y.dim() == 1 ? y.to(torch::kFloat).view({-1, 1}).expand_as(x)
                               : torch::matmul(y, w);
    return x + cond + t.view({-1, 1}) / 1000.0;
  }
};

TEST(Sigma, EmbeddingGuidance) {
  torch::manual_seed(2);
  const int64_t n = 5, e = 4;
  std::vector<torch::Tensor> seen;
  Spy spy{&seen, torch::randn({e, 2})};
  Denoiser d(spy, Prediction::Eps, linear_schedule(1000));
  auto x = torch::randn({n, 2});
  auto t = torch::rand({n}) * 999;
  auto emb = torch::randn({n, e}), null = torch::randn({e});
  auto null_n = null.unsqueeze(0).expand({n, e});
  auto cond_out = spy(x, t, emb), uncond_out = spy(x, t, null_n);

  Conditioning c;
  c.embedding = emb;
  c.guidance = 3.0;
  c.null_embedding = null;
  for (const auto& nul : {null, null.unsqueeze(0)}) {  // [E] or [1, E]
    c.null_embedding = nul;
    seen.clear();
    auto guided = d.eps(x, t, c);
    ASSERT_EQ(seen.size(), 1u);  // both halves in one call: cond first, null second
    ASSERT_EQ(seen[0].sizes(), torch::IntArrayRef({2 * n, e}));
    EXPECT_TRUE(torch::equal(seen[0].slice(0, 0, n), emb));
    EXPECT_TRUE(torch::equal(seen[0].slice(0, n), null_n));
    EXPECT_TRUE(torch::allclose(guided, torch::lerp(uncond_out, cond_out, 3.0), 1e-5, 1e-5));
  }
  // guidance 1: conditional only, no null needed
  c.guidance = 1.0;
  c.null_embedding = torch::Tensor();
  seen.clear();
  EXPECT_TRUE(torch::allclose(d.eps(x, t, c), cond_out));
  EXPECT_TRUE(torch::equal(seen.at(0), emb));
  // the sigma view passes the embedding through
  c.guidance = 2.0;
  c.null_embedding = null;
  auto sigma = sigma_at(d.schedule(), t).to(torch::kFloat);
  auto xs = x * torch::sqrt(1 + sigma * sigma).view({-1, 1});
  EXPECT_TRUE(torch::allclose(d.denoise(xs, sigma, c), d.x0(x, t, c), 1e-4, 1e-4));

  // unconditional: the expanded null embedding, unless a null label is given; else undefined y
  Conditioning u;
  u.null_embedding = null;
  seen.clear();
  EXPECT_TRUE(torch::allclose(d.eps(x, t, u), uncond_out));
  ASSERT_EQ(seen.at(0).sizes(), torch::IntArrayRef({n, e}));
  EXPECT_TRUE(torch::equal(seen.at(0), null_n));
  u.null_label = 7;
  seen.clear();
  d.eps(x, t, u);
  EXPECT_EQ(seen.at(0).scalar_type(), torch::kLong);
  EXPECT_TRUE(torch::equal(seen.at(0), torch::full({n}, int64_t{7})));
  seen.clear();
  d.eps(x, t, Conditioning{});
  EXPECT_FALSE(seen.at(0).defined());

  // errors name the problem
  auto msg = [&](const Conditioning& cc) { return error_of([&] { d.eps(x, t, cc); }); };
  Conditioning bad;
  bad.embedding = emb;
  bad.labels = torch::zeros({n}, torch::kLong);
  EXPECT_NE(msg(bad).find("both labels and embedding"), std::string::npos) << msg(bad);
  bad.labels = torch::Tensor();
  bad.guidance = 2.0;
  EXPECT_NE(msg(bad).find("needs Conditioning::null_embedding"), std::string::npos) << msg(bad);
  bad.null_label = 3;  // a null label does not stand in for a null embedding
  EXPECT_THROW(d.eps(x, t, bad), gm::Error);
  bad.null_embedding = torch::randn({e + 1});
  EXPECT_NE(msg(bad).find("E = 4"), std::string::npos) << msg(bad);
  bad.null_embedding = torch::randn({2, e});
  EXPECT_THROW(d.eps(x, t, bad), gm::Error);
  bad.null_embedding = null;
  bad.embedding = torch::randn({n + 1, e});
  EXPECT_NE(msg(bad).find("N = 5"), std::string::npos) << msg(bad);
  bad.embedding = torch::randn({n});
  EXPECT_THROW(d.eps(x, t, bad), gm::Error);
  bad.embedding = torch::zeros({n, e}, torch::kLong);
  EXPECT_NE(msg(bad).find("Conditioning::labels"), std::string::npos) << msg(bad);
  Conditioning bad_null;
  bad_null.null_embedding = torch::zeros({e}, torch::kLong);
  EXPECT_THROW(d.eps(x, t, bad_null), gm::Error);
}

}  // namespace
