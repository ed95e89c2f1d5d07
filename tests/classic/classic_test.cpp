// Generative classifiers against values worked out by hand on a small fixed dataset, against
// direct implementations of their formulas, and their error cases.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "genmodels/classic/gda.h"
#include "genmodels/classic/naive_bayes.h"
#include "test_util.h"

using namespace gm::classic;
using gm::test::error_of;

namespace {

constexpr double kLog2Pi = 1.8378770664093453;

// Class 0: the corners and centre of [0,2]^2 (5 points); class 1: 4 points around (5,5).
// By hand: mu0 = (1,1), biased cov0 = 0.8 I, unbiased cov0 = I;
//          mu1 = (5,5), biased cov1 = [[.5,.25],[.25,.5]], unbiased [[2/3,1/3],[1/3,2/3]];
//          priors 5/9, 4/9; LDA's shared covariance = 5/9 cov0 + 4/9 cov1 = [[2/3,1/9],[1/9,2/3]].
torch::Tensor tiny_x() {
  return torch::tensor({0., 0., 2., 0., 0., 2., 2., 2., 1., 1., 4., 4., 6., 5., 5., 6., 5., 5.},
                       torch::kFloat64)
      .view({9, 2});
}
torch::Tensor tiny_y() { return torch::tensor({0, 0, 0, 0, 0, 1, 1, 1, 1}, torch::kInt64); }

void expect_near(const torch::Tensor& a, const torch::Tensor& b, double tol) {
  ASSERT_EQ(a.sizes(), b.sizes());
  EXPECT_LT((a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>(), tol)
      << a << "\nvs\n"
      << b;
}

torch::Tensor m2(double a, double b, double c, double d) {
  return torch::tensor({a, b, c, d}, torch::kFloat64).view({2, 2});
}

}  // namespace

TEST(Gda, QdaMatchesHandComputedMeansCovariancesAndPosteriors) {
  GdaOptions o;
  o.shared_covariance = false;
  Gda qda(2, 2, o);
  qda.fit(tiny_x(), tiny_y());
  expect_near(qda.means(), torch::tensor({1., 1., 5., 5.}, torch::kFloat64).view({2, 2}), 1e-12);
  expect_near(qda.covariance(0), m2(1, 0, 0, 1), 1e-12);
  expect_near(qda.covariance(1), m2(2. / 3, 1. / 3, 1. / 3, 2. / 3), 1e-12);
  expect_near(qda.log_priors().exp(), torch::tensor({5. / 9, 4. / 9}, torch::kFloat64), 1e-12);
  // x = (3,3): class 0 Mahalanobis 8, log det 0; class 1: inverse [[2,-1],[-1,2]] gives 8 and
  // log det = log(1/3).
  torch::Tensor x = torch::tensor({3., 3.}, torch::kFloat64).view({1, 2});
  const double l0 = -4.0 - kLog2Pi, l1 = -4.0 - kLog2Pi - 0.5 * std::log(1.0 / 3.0);
  expect_near(qda.class_log_likelihood(x), torch::tensor({l0, l1}, torch::kFloat64).view({1, 2}),
              1e-10);
  const double j0 = l0 + std::log(5. / 9), j1 = l1 + std::log(4. / 9);
  const double p1 = 1.0 / (1.0 + std::exp(j0 - j1));
  expect_near(qda.predict_proba(x), torch::tensor({1 - p1, p1}, torch::kFloat64).view({1, 2}),
              1e-10);
  EXPECT_NEAR(qda.log_marginal(x).item<double>(), std::log(std::exp(j0) + std::exp(j1)), 1e-10);
  EXPECT_EQ(qda.predict(x).item<int64_t>(), 1);
}

TEST(Gda, LdaSharedCovarianceIsThePriorWeightedBiasedAverage) {
  Gda lda(2, 2, GdaOptions{});
  lda.fit(tiny_x(), tiny_y());
  expect_near(lda.covariance(0), m2(2. / 3, 1. / 9, 1. / 9, 2. / 3), 1e-12);
  EXPECT_TRUE(torch::equal(lda.covariance(1), lda.covariance(0)));
  // The linear discriminant and the full joint log-likelihood give the same posteriors.
  torch::Tensor x = torch::randn({50, 2}, torch::kFloat64) * 3 + 3;
  expect_near(torch::softmax(lda.joint_log_likelihood(x), 1), lda.predict_proba(x), 1e-12);
}

TEST(Gda, FixedShrinkageMovesTowardsScaledIdentity) {
  GdaOptions o;
  o.shrinkage = 0.5;
  Gda lda(2, 2, o);
  lda.fit(tiny_x(), tiny_y());
  // cov0 = 0.8 I stays; cov1 -> 0.5 cov1 + 0.5 * 0.5 I = [[.5,.125],[.125,.5]].
  const torch::Tensor want = 5. / 9 * m2(.8, 0, 0, .8) + 4. / 9 * m2(.5, .125, .125, .5);
  expect_near(lda.covariance(0), want, 1e-12);
}

TEST(Gda, LedoitWolfEqualsTheDirectFormula) {
  // scikit-learn's ledoit_wolf_shrinkage on standardised data, with the full (X^2)^T X^2 product.
  torch::manual_seed(3);
  torch::Tensor x =
      torch::randn({300, 12}, torch::kFloat64) * torch::linspace(0.1, 3, 12, torch::kFloat64);
  x.select(1, 4).fill_(2.0);  // a constant feature: scale 1, as StandardScaler does
  torch::Tensor xc = x - x.mean(0);
  torch::Tensor cov = torch::mm(xc.t(), xc) / 300.0;
  const double got = ledoit_wolf_standardised(xc, cov);

  torch::Tensor sd = xc.square().mean(0).sqrt();
  sd = torch::where(sd > 0, sd, torch::ones_like(sd));
  torch::Tensor z = xc / sd;
  const double n = 300, p = 12;
  torch::Tensor z2 = z.square();
  torch::Tensor emp_trace = z2.sum(0) / n;
  const double mu = emp_trace.sum().item<double>() / p;
  const double beta_ = torch::mm(z2.t(), z2).sum().item<double>();
  const double delta_ = torch::mm(z.t(), z).square().sum().item<double>() / (n * n);
  double beta = (beta_ / n - delta_) / (n * p);
  const double delta = (delta_ - 2 * mu * emp_trace.sum().item<double>() + p * mu * mu) / p;
  beta = std::min(beta, delta);
  EXPECT_NEAR(got, beta / delta, 1e-12);
  EXPECT_GT(got, 0.0);
  EXPECT_LT(got, 1.0);
}

TEST(Gda, GramIsXtX) {
  torch::Tensor x = torch::randn({101, 37}, torch::kFloat64);
  expect_near(gram(x), torch::mm(x.t(), x), 1e-10);
}

TEST(Gda, SamplesHaveTheFittedMomentsAndTheDensityNormalises) {
  GdaOptions o;
  o.shared_covariance = false;
  Gda qda(2, 2, o);
  qda.fit(tiny_x(), tiny_y());
  at::Generator gen = at::detail::createCPUGenerator(7);
  torch::Tensor s = qda.sample(40000, 1, gen);
  expect_near(s.mean(0), torch::tensor({5., 5.}, torch::kFloat64), 0.02);
  torch::Tensor sc = s - s.mean(0);
  expect_near(torch::mm(sc.t(), sc) / 40000.0, qda.covariance(1), 0.02);
  // p(x) integrates to 1: grid sum over [-4, 10]^2.
  torch::Tensor g = torch::linspace(-4, 10, 281, torch::kFloat64);
  auto mesh = torch::meshgrid({g, g}, "ij");
  torch::Tensor pts = torch::stack({mesh[0].flatten(), mesh[1].flatten()}, 1);
  const double h = 14.0 / 280;
  EXPECT_NEAR(qda.log_marginal(pts).exp().sum().item<double>() * h * h, 1.0, 1e-3);
}

TEST(NaiveBayes, GaussianMatchesHandComputedMomentsAndDensity) {
  GaussianNaiveBayes gnb(2, 2, 0.0, Priors{});
  gnb.fit(tiny_x(), tiny_y());
  expect_near(gnb.means(), torch::tensor({1., 1., 5., 5.}, torch::kFloat64).view({2, 2}), 1e-12);
  expect_near(gnb.variances(), torch::tensor({.8, .8, .5, .5}, torch::kFloat64).view({2, 2}),
              1e-12);
  torch::Tensor x = torch::tensor({3., 4.}, torch::kFloat64).view({1, 2});
  // class 1: -1/2 [2 log(2 pi .5) + (4 + 1) / .5]
  const double l1 = -0.5 * (2 * std::log(2 * M_PI * 0.5) + 10.0);
  const double l0 = -0.5 * (2 * std::log(2 * M_PI * 0.8) + (4.0 + 9.0) / 0.8);
  expect_near(gnb.class_log_likelihood(x), torch::tensor({l0, l1}, torch::kFloat64).view({1, 2}),
              1e-10);
  // var_smoothing adds eps * (largest total variance): feature variances over all 9 points.
  GaussianNaiveBayes smooth(2, 2, 0.1, Priors{});
  smooth.fit(tiny_x(), tiny_y());
  torch::Tensor tv = tiny_x().var(0, /*unbiased=*/false);
  expect_near(smooth.variances() - gnb.variances(),
              torch::full({2, 2}, 0.1 * tv.max().item<double>(), torch::kFloat64), 1e-12);
}

TEST(NaiveBayes, BernoulliMatchesLaplaceCounts) {
  // 3 features; class 0: 3 examples, class 1: 2.
  torch::Tensor x = torch::tensor({1., 0., 0.9, 1., 1., 0., 0., 0., 0.7, 0., 1., 1., 0.2, 1., 0.},
                                  torch::kFloat64)
                        .view({5, 3});
  torch::Tensor y = torch::tensor({0, 0, 0, 1, 1}, torch::kInt64);
  BernoulliNaiveBayes bnb(2, 3, 0.5, 1.0, Priors{});
  bnb.fit(x, y);
  // binarised (t = 0.5): class 0 counts (2, 1, 2) of 3; class 1 (0, 2, 1) of 2.
  torch::Tensor want =
      torch::tensor({3. / 5, 2. / 5, 3. / 5, 1. / 4, 3. / 4, 2. / 4}, torch::kFloat64).view({2, 3});
  expect_near(bnb.feature_probabilities(), want, 1e-12);
  torch::Tensor q = torch::tensor({1., 0., 1.}, torch::kFloat64).view({1, 3});
  const double l0 = std::log(3. / 5 * 3. / 5 * 3. / 5), l1 = std::log(1. / 4 * 1. / 4 * 2. / 4);
  expect_near(bnb.class_log_likelihood(q), torch::tensor({l0, l1}, torch::kFloat64).view({1, 2}),
              1e-12);
  // The 8 binary vectors' probabilities sum to 1 per class.
  torch::Tensor all = torch::tensor({0., 0., 0., 0., 0., 1., 0., 1., 0., 0., 1., 1.,
                                     1., 0., 0., 1., 0., 1., 1., 1., 0., 1., 1., 1.},
                                    torch::kFloat64)
                          .view({8, 3});
  expect_near(bnb.class_log_likelihood(all).exp().sum(0), torch::ones({2}, torch::kFloat64), 1e-12);
  at::Generator gen = at::detail::createCPUGenerator(1);
  expect_near(bnb.sample(40000, 1, gen).mean(0), want[1], 0.01);
}

TEST(Classic, PriorsFittedUniformOrGiven) {
  BernoulliNaiveBayes uni(2, 2, 0.5, 1.0, parse_priors("uniform"));
  uni.fit(tiny_x(), tiny_y());
  expect_near(uni.log_priors().exp(), torch::tensor({.5, .5}, torch::kFloat64), 1e-12);
  BernoulliNaiveBayes given(2, 2, 0.5, 1.0, parse_priors("0.25,0.75"));
  given.fit(tiny_x(), tiny_y());
  expect_near(given.log_priors().exp(), torch::tensor({.25, .75}, torch::kFloat64), 1e-12);
  EXPECT_NE(error_of([] { parse_priors("0.5,0.6"); }).find("sum to"), std::string::npos);
  EXPECT_NE(error_of([] { parse_priors("0.5,x"); }).find("'x'"), std::string::npos);
  EXPECT_NE(error_of([] {
              GaussianNaiveBayes(3, 2, 0.0, parse_priors("0.5,0.5"));
            }).find("2 values for 3 classes"),
            std::string::npos);
}

TEST(Classic, BadInputGivesClearErrorsNotNaN) {
  // A feature constant within every class makes the covariance singular.
  torch::Tensor x = tiny_x().clone();
  torch::Tensor x3 = torch::cat({x, torch::ones({9, 1}, torch::kFloat64)}, 1);
  GdaOptions none;
  std::string e = error_of([&] {
    Gda lda(2, 3, none);
    lda.fit(x3, tiny_y());
  });
  EXPECT_NE(e.find("singular"), std::string::npos) << e;
  EXPECT_NE(e.find("model.shrinkage"), std::string::npos) << e;
  EXPECT_NE(e.find("feature 2"), std::string::npos) << e;
  GdaOptions q;
  q.shared_covariance = false;
  e = error_of([&] {
    Gda qda(2, 3, q);
    qda.fit(x3, tiny_y());
  });
  EXPECT_NE(e.find("model.reg_param"), std::string::npos) << e;
  // ...and regularisation fixes it, with finite probabilities.
  q.reg_param = 0.1;
  Gda qda(2, 3, q);
  qda.fit(x3, tiny_y());
  EXPECT_TRUE(torch::isfinite(qda.predict_proba(x3)).all().item<bool>());
  GdaOptions shrink;
  shrink.shrinkage_auto = true;
  Gda lda(2, 3, shrink);
  lda.fit(x3, tiny_y());
  EXPECT_TRUE(torch::isfinite(lda.log_marginal(x3)).all().item<bool>());
  e = error_of([&] {
    GaussianNaiveBayes g(2, 3, 0.0, Priors{});
    g.fit(torch::zeros({9, 3}, torch::kFloat64), tiny_y());
  });
  EXPECT_NE(e.find("model.var_smoothing"), std::string::npos) << e;

  // A class with no samples; a feature count that differs from the model's.
  e = error_of([&] {
    GaussianNaiveBayes g(3, 2, 1e-9, Priors{});
    g.fit(tiny_x(), tiny_y());
  });
  EXPECT_NE(e.find("class 2 has no training examples"), std::string::npos) << e;
  e = error_of([&] { qda.predict(tiny_x()); });
  EXPECT_NE(e.find("3 features"), std::string::npos) << e;
  e = error_of([&] { qda.fit(tiny_x(), tiny_y()); });
  EXPECT_NE(e.find("3 features"), std::string::npos) << e;
  e = error_of([&] {
    GaussianNaiveBayes g(2, 2, 1e-9, Priors{});
    g.fit(tiny_x(), torch::tensor({0, 0, 0, 0, 0, 1, 1, 1, 5}, torch::kInt64));
  });
  EXPECT_NE(e.find("label 5"), std::string::npos) << e;
}

TEST(Classic, SaveAndLoadGiveIdenticalPredictions) {
  GdaOptions o;
  o.shared_covariance = false;
  o.reg_param = 0.01;
  auto a = std::make_shared<Gda>(2, 2, o);
  a->fit(tiny_x(), tiny_y());
  std::stringstream buf;
  torch::serialize::OutputArchive out;
  a->save(out);
  out.save_to(buf);
  auto b = std::make_shared<Gda>(2, 2, o);
  torch::serialize::InputArchive in;
  in.load_from(buf);
  b->load(in);
  torch::Tensor x = torch::randn({20, 2}, torch::kFloat64) * 3 + 3;
  EXPECT_TRUE(torch::equal(a->joint_log_likelihood(x), b->joint_log_likelihood(x)));
  EXPECT_TRUE(b->fitted());
}
