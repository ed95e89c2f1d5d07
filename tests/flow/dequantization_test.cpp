// Variational dequantisation (Flow++, Ho et al. 2019, sec. 3.1): the dequantiser q(u | k) starts
// as uniform noise, is a conditional flow into (0, 1)^D with an exact density (round trip,
// log-determinant against the autograd Jacobian, mass 1 on the unit square), it stays fp32 under
// bf16 autocast, and the importance-weighted estimate of eq. 13 is a lower bound on the exact
// discrete log-likelihood that tightens with the number of draws and with training of q.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>

#include "genmodels/flow/dequantizer.h"
#include "genmodels/nn/precision.h"
#include "test_util.h"

using namespace gm::flow;

namespace {

void perturb(torch::nn::Module& m, double scale) {
  torch::NoGradGuard ng;
  for (auto& p : m.parameters()) p.add_(scale * torch::randn_like(p));
}

Dequantizer tiny_dequantizer(std::vector<int64_t> shape, int64_t couplings = 4) {
  DequantizerOptions o;
  o.shape = std::move(shape);
  o.couplings = couplings;
  o.hidden = 8;
  return Dequantizer(o);
}

// log|det du/deps| of one example (float64) from the autograd Jacobian, levels held fixed.
double autograd_logdet(Dequantizer& q, const torch::Tensor& levels, const torch::Tensor& eps0) {
  torch::Tensor eps = eps0.clone().requires_grad_(true);
  torch::Tensor ld = torch::zeros({1}, torch::kFloat64);
  torch::Tensor u = q->forward(levels, eps, ld).reshape(-1);
  const int64_t D = u.numel();
  torch::Tensor J = torch::empty({D, D}, torch::kFloat64);
  for (int64_t i = 0; i < D; ++i)
    J[i] = torch::autograd::grad({u[i]}, {eps}, {}, /*retain_graph=*/true)[0].reshape(-1);
  return std::get<1>(torch::linalg_slogdet(J)).item<double>();
}

}  // namespace

// Every layer starts as the identity, so an untrained q is exactly uniform dequantisation.
TEST(Dequantization, StartsAsUniformNoise) {
  torch::manual_seed(5);
  Dequantizer q = tiny_dequantizer({1, 4, 4});
  q->to(torch::kFloat64);
  torch::Tensor levels = torch::randint(0, 256, {2000, 1, 4, 4}, torch::kFloat64);
  auto [u, log_q] = q->sample(levels, torch::randn(levels.sizes(), torch::kFloat64));
  EXPECT_LT(log_q.abs().max().item<double>(), 1e-9);
  EXPECT_NEAR(u.mean().item<double>(), 0.5, 0.005);
  EXPECT_NEAR(u.var().item<double>(), 1.0 / 12, 0.002);
}

TEST(Dequantization, SamplesInUnitCubeInvertAndLogQIsTheChangeOfVariables) {
  torch::manual_seed(0);
  // 1 x 4 x 4: the flow runs on 2x2-squeezed blocks; 2 x 2 x 3 (odd side): on the image itself.
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{1, 4, 4}, {2, 2, 3}}) {
    Dequantizer q = tiny_dequantizer(shape);
    q->to(torch::kFloat64);
    perturb(*q, 0.1);  // the last layers start at zero: make every coupling act
    for (int trial = 0; trial < 4; ++trial) {
      torch::Tensor levels =
          torch::randint(0, 256, {1, shape[0], shape[1], shape[2]}, torch::kFloat64);
      torch::Tensor eps = torch::randn(levels.sizes(), torch::kFloat64);
      auto [u, log_q] = q->sample(levels, eps);
      EXPECT_GT(u.min().item<double>(), 0.0);
      EXPECT_LT(u.max().item<double>(), 1.0);
      EXPECT_LT((q->inverse(levels, u) - eps).abs().max().item<double>(), 1e-9);
      // log q(u | k) = log N(eps; 0, I) - log|det du/deps| (Flow++ eq. 11)
      const double D = double(u.numel());
      const double log_normal =
          (-0.5 * eps.square().sum()).item<double>() - 0.5 * D * std::log(2 * M_PI);
      const double expect = log_normal - autograd_logdet(q, levels, eps);
      EXPECT_NEAR(log_q.item<double>(), expect, 1e-9);
      EXPECT_NEAR(q->log_prob(levels, u).item<double>(), expect, 1e-8);
    }
    // q depends on k: the same eps gives different u for different images.
    torch::Tensor eps = torch::randn({1, shape[0], shape[1], shape[2]}, torch::kFloat64);
    torch::Tensor a = q->sample(torch::zeros_like(eps), eps).first;
    torch::Tensor b = q->sample(torch::full_like(eps, 255), eps).first;
    EXPECT_GT((a - b).abs().max().item<double>(), 1e-3);
  }
}

TEST(Dequantization, DensityHasMassOneOnTheUnitSquare) {
  torch::manual_seed(1);
  Dequantizer q = tiny_dequantizer({1, 1, 2});
  q->to(torch::kFloat64);
  perturb(*q, 0.1);
  // Midpoint rule in probit coordinates u = Phi(y), y on [-L, L]^2 (q may pile up near the faces
  // of the square, which a grid on u would miss): mass = sum q(u) N(y1) N(y2) h^2. L = 7 keeps
  // Phi(y) below 1 in float64 (Phi(12) rounds to 1, where Phi^{-1} is infinite) while the mass
  // of a near-standard y outside the square is below 1e-11.
  const int64_t n = 150;
  const double L = 7, h = 2 * L / n;
  torch::Tensor c = -L + h * (torch::arange(n, torch::kFloat64) + 0.5);
  torch::Tensor y =
      torch::stack(
          {c.view({n, 1}).expand({n, n}).reshape(-1), c.view({1, n}).expand({n, n}).reshape(-1)}, 1)
          .view({n * n, 1, 1, 2});
  torch::Tensor log_jac = (-0.5 * y.square() - 0.5 * std::log(2 * M_PI)).flatten(1).sum(1);
  torch::NoGradGuard ng;
  for (double k : {0.0, 255.0}) {
    torch::Tensor levels = torch::full({n * n, 1, 1, 2}, k, torch::kFloat64);
    torch::Tensor lq = q->log_prob(levels, torch::special::ndtr(y)) + log_jac;
    const double mass = lq.exp().sum().item<double>() * h * h;
    EXPECT_NEAR(mass, 1.0, 1e-3) << "k = " << k;
  }
}

// model.precision=bf16 autocasts the flow's coupling networks; the dequantiser must not follow.
TEST(Dequantization, StaysFp32UnderBf16Autocast) {
  torch::manual_seed(2);
  Dequantizer q = tiny_dequantizer({1, 4, 4});
  perturb(*q, 0.1);
  torch::Tensor levels = torch::randint(0, 256, {3, 1, 4, 4}).to(torch::kFloat32);
  torch::Tensor eps = torch::randn({3, 1, 4, 4});
  auto [u32, lq32] = q->sample(levels, eps);
  gm::nn::AutocastScope bf16(gm::nn::Precision::Bf16);
  auto [u, lq] = q->sample(levels, eps);
  EXPECT_EQ(u.scalar_type(), torch::kFloat32);
  EXPECT_EQ(lq.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(u, u32));
  EXPECT_TRUE(torch::equal(lq, lq32));
}

namespace {

// A continuous density on R^2 whose cell masses are known in closed form: an equal mixture of two
// axis-aligned Gaussians (std 0.15) inside the cell [3, 4) x [7, 8). P(k) for k = (3, 7) is
// sum_m w_m prod_d [Phi((k_d + 1 - mu_md) / s) - Phi((k_d - mu_md) / s)], exact up to erf's
// rounding, so the bounds are compared with the true discrete log-likelihood, not a quadrature.
struct Mixture {
  double mu[2][2] = {{3.3, 7.75}, {3.7, 7.3}};
  double s = 0.15;

  // log p(k + u) per example; u is N x 1 x 1 x 2, k = (3, 7).
  torch::Tensor log_density(const torch::Tensor& u) const {
    torch::Tensor v = u.reshape({-1, 2}) + torch::tensor({3.0, 7.0}, u.options());
    std::vector<torch::Tensor> comps;
    for (const auto& m : mu) {
      torch::Tensor z = (v - torch::tensor({m[0], m[1]}, u.options())) / s;
      comps.push_back(std::log(0.5) -
                      (0.5 * z.square() + std::log(s) + 0.5 * std::log(2 * M_PI)).sum(1));
    }
    return torch::logsumexp(torch::stack(comps, 1), 1);
  }

  double exact_log_p() const {
    auto phi = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
    const double k[2] = {3, 7};
    double P = 0;
    for (const auto& m : mu) {
      double prod = 0.5;
      for (int d = 0; d < 2; ++d) prod *= phi((k[d] + 1 - m[d]) / s) - phi((k[d] - m[d]) / s);
      P += prod;
    }
    return std::log(P);
  }
};

// {mean, standard error} over a batch of copies of k of the eq. 13 estimate with S draws.
std::pair<double, double> estimate(const Mixture& p, DequantizerImpl* q, int64_t batch, int64_t S,
                                   uint64_t seed) {
  torch::NoGradGuard ng;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  torch::Tensor levels = torch::tensor({3.0, 7.0}, torch::kFloat64).view({1, 1, 1, 2});
  levels = levels.expand({batch, 1, 1, 2}).contiguous();
  torch::Tensor ll = dequantized_log_likelihood(
      [&](const torch::Tensor& u) { return p.log_density(u); }, q, levels, S, gen);
  return {ll.mean().item<double>(), (ll.std() / std::sqrt(double(batch))).item<double>()};
}

}  // namespace

TEST(Dequantization, ImportanceWeightedEstimateIsALowerBoundThatTightens) {
  torch::manual_seed(3);
  const Mixture p;
  const double exact = p.exact_log_p();
  Dequantizer q = tiny_dequantizer({1, 1, 2});
  q->to(torch::kFloat64);
  auto report = [&](const std::string& what, int64_t S, std::pair<double, double> e) {
    std::cout << what << " S = " << S << ": " << e.first << " +- " << e.second << " (exact "
              << exact << ")\n";
    EXPECT_LT(e.first, exact + 3 * e.second + 1e-6) << what << " S = " << S;
  };
  // Uniform noise: the bound tightens with S (IWAE, Burda et al. 2016, theorem 1).
  double prev = -1e300;
  for (int64_t S : {1, 10, 100, 1000}) {
    auto e = estimate(p, nullptr, 400, S, 10 + S);
    report("uniform", S, e);
    EXPECT_GT(e.first, prev - 3 * e.second) << "S = " << S;
    prev = e.first;
  }
  EXPECT_NEAR(prev, exact, 0.02);
  const double uniform_gap = exact - estimate(p, nullptr, 400, 1, 7).first;
  EXPECT_GT(uniform_gap, 0.3);  // the posterior p(u | k) is far from uniform

  // Fit q by maximising the eq. 12 bound E_q[log p(k + u) - log q(u | k)] (reparameterised).
  torch::optim::Adam opt(q->parameters(), torch::optim::AdamOptions(1e-2));
  torch::Tensor levels = torch::tensor({3.0, 7.0}, torch::kFloat64).view({1, 1, 1, 2});
  levels = levels.expand({128, 1, 1, 2}).contiguous();
  for (int step = 0; step < 300; ++step) {
    auto [u, log_q] = q->sample(levels, torch::randn(levels.sizes(), torch::kFloat64));
    torch::Tensor loss = -(p.log_density(u) - log_q).mean();
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  prev = -1e300;
  for (int64_t S : {1, 10, 100}) {
    auto e = estimate(p, q.get(), 400, S, 20 + S);
    report("variational", S, e);
    EXPECT_GT(e.first, prev - 3 * e.second) << "S = " << S;
    if (S == 1) {
      EXPECT_LT(exact - e.first, 0.3 * uniform_gap);  // q is close to p(u | k)
    }
    prev = e.first;
  }
  EXPECT_NEAR(prev, exact, 0.01);
}
