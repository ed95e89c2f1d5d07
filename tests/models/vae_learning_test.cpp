// The VAE learns: on dynamically binarised Fashion-MNIST the reconstruction term falls and the
// importance-weighted bound sits above the ELBO and rises with K; through the registry and the
// trainer a 2-D toy is learned and the run reports its likelihood and writes its figures.
#include <gtest/gtest.h>

#include <filesystem>

#include "genmodels/data/dataset.h"
#include "genmodels/data/toy2d.h"
#include "genmodels/metrics/toy2d.h"
#include "genmodels/models/run.h"
#include "genmodels/vae/vae.h"
#include "test_util.h"

namespace fs = std::filesystem;

TEST(VaeLearning, FashionMnistReconstructionFallsAndIwaeBoundRisesWithK) {
  torch::manual_seed(0);
  gm::data::DataOptions o;
  o.limit = 6000;
  const gm::data::Dataset train = gm::data::load_dataset("fashion-mnist", o);
  o.split = "test";
  o.limit = 100;
  const gm::data::Dataset test = gm::data::load_dataset("fashion-mnist", o);
  gm::vae::VaeOptions vo;
  vo.shape = {1, 28, 28};
  vo.latent = 16;
  vo.arch = "mlp";
  vo.hidden = 256;
  vo.likelihood = gm::vae::Likelihood::Bernoulli;
  gm::vae::Vae vae(vo);
  at::Generator g = at::detail::createCPUGenerator(1);
  const torch::Tensor test_bin = at::bernoulli((test.x + 1) * 0.5, g);
  auto recon = [&] {
    torch::NoGradGuard ng;
    torch::manual_seed(5);
    return -vae->elbo_terms(test_bin).log_px_z.mean().item<double>();
  };
  const double recon0 = recon();
  torch::optim::Adam opt(vae->parameters(), torch::optim::AdamOptions(1e-3));
  for (int step = 0; step < 600; ++step) {
    torch::Tensor idx = torch::randint(train.size(), {100}, torch::kInt64);
    torch::Tensor xb = torch::bernoulli((train.x.index_select(0, idx) + 1) * 0.5);
    auto t = vae->elbo_terms(xb);
    torch::Tensor loss = (-t.log_px_z + t.kl).mean();
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  vae->eval();
  const double recon1 = recon();
  std::cout << "reconstruction -log p(x|z): " << recon0 << " -> " << recon1 << " nats\n";
  EXPECT_LT(recon1, 0.6 * recon0);

  // Bounds averaged over 3 seeds: ELBO <= IWAE-1 (equal in expectation) <= IWAE-10 <= IWAE-100.
  std::map<int64_t, double> iwae;
  double elbo = 0;
  for (uint64_t seed = 0; seed < 3; ++seed)
    for (int64_t k : {1, 10, 100}) {
      torch::manual_seed(seed * 100 + k);
      torch::Tensor lw = vae->log_weights(test_bin, k).to(torch::kFloat64);
      iwae[k] +=
          (torch::logsumexp(lw, 1) - std::log(static_cast<double>(k))).mean().item<double>() / 3;
      if (k == 100) elbo += lw.mean().item<double>() / 3;
    }
  std::cout << "ELBO " << elbo << ", IWAE-1 " << iwae[1] << ", IWAE-10 " << iwae[10]
            << ", IWAE-100 " << iwae[100] << " nats\n";
  EXPECT_NEAR(iwae[1], elbo, 2.0);
  EXPECT_GT(iwae[10], elbo + 1.0);
  EXPECT_GT(iwae[100], iwae[10]);
}

TEST(VaeLearning, ToyThroughTheTrainerLearnsAndReportsItsLikelihood) {
  gm::test::TempDir dir("gm_vae_toy");
  gm::TrainArgs a;
  a.model = "vae";
  a.data = "moons";
  a.out = dir.file("run1");
  a.seed = 1;
  a.threads = 1;  // tiny MLPs: one thread is fastest
  a.steps = 1;
  a.sets = {"train.batch_size=256", "train.log_every=1000", "model.hidden=128", "train.lr=2e-3",
            "model.kl_warmup=1000"};
  gm::run_train(a);
  gm::SampleArgs s;
  s.n = 2000;
  s.seed = 5;
  s.quiet = true;
  s.run = a.out;
  const torch::Tensor data = gm::data::sample_toy2d("moons", 2000, 1234);
  const double swd0 = gm::metrics::sliced_wasserstein(gm::sample_run(s).x, data);

  a.out = dir.file("run");
  a.steps = 3000;
  gm::run_train(a);
  s.run = a.out;
  const double swd = gm::metrics::sliced_wasserstein(gm::sample_run(s).x, data);
  std::cout << "moons SWD untrained " << swd0 << ", trained " << swd << "\n";
  EXPECT_LT(swd, 0.5 * swd0);
  EXPECT_TRUE(fs::exists(dir.file("run/samples/latent.png")));

  gm::LikelihoodArgs la;
  la.run = a.out;
  la.n = 500;
  la.k = 200;
  la.threads = 1;
  const gm::Json r = gm::run_likelihood(la);
  std::cout << r.dump() << "\n";
  EXPECT_LE(r.at("nll_nats").get<double>(), -r.at("elbo_nats").get<double>());
  // moons has unit std: the best Gaussian scores log(2 pi e) = 2.84 nats; the VAE must beat it
  // clearly (a 3000-step run reaches about 1.96).
  EXPECT_LT(r.at("nll_nats").get<double>(), 2.4);
}
