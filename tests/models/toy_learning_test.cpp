// The whole stack learns: `ddpm` trained through the registry and trainer (config defaults, EMA,
// LR schedule) on a 2-D toy, sampled with the default sampler, lands near the data distribution
// by sliced Wasserstein distance and far below the untrained model.
#include <gtest/gtest.h>

#include <filesystem>

#include "genmodels/data/toy2d.h"
#include "genmodels/metrics/toy2d.h"
#include "genmodels/models/run.h"

namespace fs = std::filesystem;

TEST(ToyLearning, DdpmOn8GaussiansReachesSmallSlicedWasserstein) {
  const std::string dir =
      (fs::temp_directory_path() / ("gm_models_learn_" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  gm::TrainArgs a;
  a.model = "ddpm";
  a.data = "8gaussians";
  a.out = dir;
  a.seed = 1;
  a.threads = 2;
  a.steps = 1;
  a.sets = {"model.mlp_hidden=128", "train.batch_size=256", "train.log_every=500"};
  gm::run_train(a);  // one step: (almost) the untrained model, as the baseline

  gm::SampleArgs s;
  s.run = dir;
  s.n = 2000;
  s.seed = 5;
  s.quiet = true;
  const torch::Tensor data = gm::data::sample_toy2d("8gaussians", 2000, 1234);
  const double swd_init = gm::metrics::sliced_wasserstein(gm::sample_run(s).x, data);

  fs::remove_all(dir);
  a.steps = 2000;
  a.sets.push_back("train.lr=2e-3");
  gm::run_train(a);
  const torch::Tensor samples = gm::sample_run(s).x;
  const double swd = gm::metrics::sliced_wasserstein(samples, data);
  const double swd_data =
      gm::metrics::sliced_wasserstein(gm::data::sample_toy2d("8gaussians", 2000, 99), data);
  std::cout << "SWD untrained " << swd_init << ", trained " << swd << ", data vs data " << swd_data
            << "\n";
  EXPECT_TRUE(torch::isfinite(samples).all().item<bool>());
  EXPECT_LT(swd, 0.08);
  EXPECT_LT(swd, 0.25 * swd_init);
}
