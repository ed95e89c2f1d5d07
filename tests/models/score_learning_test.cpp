// The score-based family learns through the registry and trainer: `sde` (VP, sampled by its
// default predictor-corrector sampler), `ncsn` (sigma_1 computed from the data, sampled by
// annealed Langevin) and `ddpm` with Improved DDPM's learned variances on a 2-D toy land near
// the data by sliced Wasserstein distance, and the ODE likelihood of the trained `sde` beats the
// best single Gaussian on held-out points.
#include <gtest/gtest.h>

#include <cmath>

#include "genmodels/data/toy2d.h"
#include "genmodels/metrics/toy2d.h"
#include "genmodels/models/run.h"
#include "test_util.h"

namespace {

double trained_swd(const std::string& model, const std::vector<std::string>& sets,
                   const std::string& dir, const std::vector<std::string>& sample_sets = {}) {
  gm::TrainArgs a;
  a.model = model;
  a.data = "8gaussians";
  a.out = dir;
  a.seed = 1;
  a.threads = 2;
  a.steps = 1500;
  a.sets = {"model.mlp_hidden=128", "train.batch_size=256", "train.log_every=500", "train.lr=2e-3",
            "data.limit=4000"};
  a.sets.insert(a.sets.end(), sets.begin(), sets.end());
  gm::run_train(a);
  gm::SampleArgs s;
  s.run = dir;
  s.n = 2000;
  s.seed = 5;
  s.quiet = true;
  s.sets = sample_sets;
  const torch::Tensor samples = gm::sample_run(s).x;
  EXPECT_TRUE(torch::isfinite(samples).all().item<bool>());
  const double swd =
      gm::metrics::sliced_wasserstein(samples, gm::data::sample_toy2d("8gaussians", 2000, 1234));
  std::cout << model << ": SWD " << swd << "\n";
  return swd;
}

TEST(ScoreLearning, SdeVpLearnsAToyAndItsOdeLikelihoodBeatsAGaussian) {
  gm::test::TempDir dir("gm_sde");
  EXPECT_LT(trained_swd("sde", {"model.sde=vp"}, dir.path.string()), 0.1);

  gm::LikelihoodArgs l;
  l.run = dir.path.string();
  l.n = 200;
  const gm::Json j = gm::run_likelihood(l);
  // The best single Gaussian's NLL on the same points: 0.5 log det(2 pi e Sigma) (at the fit).
  const torch::Tensor test = gm::data::sample_toy2d("8gaussians", 50000, 1).narrow(0, 0, 200);
  const torch::Tensor c = torch::cov(test.t().to(torch::kDouble));
  const double gauss = 0.5 * std::log(torch::det(2 * M_PI * M_E * c).item<double>());
  std::cout << "sde ODE NLL " << j.at("nll_nats").get<double>() << " nats, Gaussian " << gauss
            << ", NFE " << j.at("nfe_per_image").get<double>() << "\n";
  EXPECT_LT(j.at("nll_nats").get<double>(), gauss - 0.5);
}

TEST(ScoreLearning, NcsnLearnsAToyWithAnnealedLangevin) {
  gm::test::TempDir dir("gm_ncsn");
  EXPECT_LT(trained_swd("ncsn", {}, dir.path.string()), 0.12);
}

// Improved DDPM on the toy: learned variances with the hybrid loss and importance-sampled t,
// sampled by 100-step respaced DDPM with the learned variances (sample.variance = auto).
TEST(ScoreLearning, DdpmWithLearnedVariancesLearnsAToy) {
  gm::test::TempDir dir("gm_iddpm");
  EXPECT_LT(trained_swd("ddpm",
                        {"diffusion.learn_sigma=true", "diffusion.importance_sampling=true",
                         "diffusion.timesteps=200"},
                        dir.path.string(), {"sample.sampler=ddpm", "sample.steps=100"}),
            0.1);
}

}  // namespace
