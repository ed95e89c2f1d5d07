// The VAE learns: on dynamically binarised Fashion-MNIST the reconstruction term falls and the
// importance-weighted bound sits above the ELBO and rises with K; through the registry and the
// trainer a 2-D toy is learned and the run reports its likelihood (with its standard error) and
// writes its figures; a class-conditional VampPrior VAE on three clearly different tiny-image
// classes draws each requested class, resumes bit-identically and reports -log p(x|y).
#include <gtest/gtest.h>

#include <filesystem>

#include "genmodels/data/dataset.h"
#include "genmodels/data/toy2d.h"
#include "genmodels/io/image.h"
#include "genmodels/metrics/toy2d.h"
#include "genmodels/models/run.h"
#include "genmodels/vae/vae.h"
#include "resume_check.h"
#include "test_util.h"
#include "three_classes.h"

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
  // Per-example bounds spread by about a nat: their mean's standard error is about 1/sqrt(500).
  EXPECT_GT(r.at("nll_stderr").get<double>(), 0.01);
  EXPECT_LT(r.at("nll_stderr").get<double>(), 0.2);
  EXPECT_FALSE(r.at("conditional").get<bool>());  // toys have no classes
  // `sample --class` on an unconditional model: the one-line error.
  s.class_label = 1;
  const std::string err = gm::test::error_of([&] { gm::sample_run(s); });
  EXPECT_NE(err.find("unconditional"), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos);
  // moons has unit std: the best Gaussian scores log(2 pi e) = 2.84 nats; the VAE must beat it
  // clearly (a 3000-step run reaches about 1.96).
  EXPECT_LT(r.at("nll_nats").get<double>(), 2.4);
}

TEST(VaeLearning, ConditionalVampPriorDrawsTheRequestedClass) {
  gm::test::TempDir dir("gm_vae_cond");
  gm::test::write_three_class_folder(dir.file("data"), 100);
  gm::TrainArgs a;
  a.model = "vae";
  a.data = "folder:" + dir.file("data");
  a.out = dir.file("run");
  a.seed = 3;
  a.threads = 2;
  a.steps = 400;
  a.sets = {"train.batch_size=64", "train.log_every=1000",  "train.lr=3e-3",
            "model.channels=8",    "model.hidden=64",       "model.latent=4",
            "model.prior=vamp",    "model.pseudo_inputs=15"};
  gm::run_train(a);
  EXPECT_TRUE(fs::exists(dir.file("run/samples/pseudo_inputs.png")));
  EXPECT_TRUE(fs::exists(dir.file("run/samples/interpolations.png")));

  // Samples for class c are nearest to class c's pattern (the noise-free class mean).
  gm::SampleArgs s;
  s.run = a.out;
  s.n = 100;
  s.seed = 9;
  s.quiet = true;
  for (int64_t c = 0; c < 3; ++c) {
    s.class_label = c;
    const gm::SampleResult r = gm::sample_run(s);
    ASSERT_TRUE(r.labels.defined());
    EXPECT_TRUE((r.labels == c).all().item<bool>());
    const double share = gm::test::share_nearest_class(r.x, c);
    std::cout << "class " << c << ": " << share << " of samples nearest its mean\n";
    EXPECT_GE(share, 0.9) << "class " << c;
  }
  // Without --class: every class in turn (one grid column per class).
  s.class_label = -1;
  s.n = 6;
  EXPECT_TRUE(torch::equal(gm::sample_run(s).labels, torch::tensor({0, 1, 2, 0, 1, 2})));
  s.class_label = 3;
  EXPECT_NE(gm::test::error_of([&] { gm::sample_run(s); }).find("out of range"), std::string::npos);

  // eval nll: -log p(x|y), with its standard error beside it.
  gm::EvalArgs e;
  e.target = a.out;
  e.metrics = {"nll"};
  e.nll_n = 60;
  e.k = 50;
  e.json = dir.file("eval.json");
  const gm::Json r = gm::run_eval(e).result;
  const gm::Json& l = r.at("likelihood");
  std::cout << l.dump() << "\n";
  EXPECT_TRUE(l.at("conditional").get<bool>());
  EXPECT_NE(l.at("description").get<std::string>().find("p(x|y)"), std::string::npos);
  EXPECT_EQ(l.at("n").get<int64_t>(), 60);
  const double nll = l.at("nll_nats").get<double>(), se = l.at("nll_stderr").get<double>();
  EXPECT_GT(se, 0.0);
  EXPECT_LT(se, 0.2 * std::abs(nll));
  EXPECT_GT(l.at("bits_per_dim_stderr").get<double>(), 0.0);
  EXPECT_NEAR(l.at("bits_per_dim_stderr").get<double>(), se / (64 * std::log(2.0)), 1e-9);
  EXPECT_NEAR(r.at("metrics").at("nll_nats").at("stderr").get<double>(), se, 1e-12);
  // Pixel noise 0.15 is 19 levels of 8 bits: about log2(19 sqrt(2 pi e)) = 6.3 bits per pixel
  // (less where it clips at +-1), and below uniform's 8.
  EXPECT_GT(l.at("bits_per_dim").get<double>(), 4.0);
  EXPECT_LT(l.at("bits_per_dim").get<double>(), 7.8);

  // Resume: 20 steps at once equal 11 + 9 resumed, pseudo-inputs included.
  a.steps = 20;
  a.out = dir.file("once");
  EXPECT_GT(gm::test::expect_bit_identical_resume(a, dir.file("split"), 11), 10);
  int saved = 0;  // the pseudo-inputs and class embeddings, in the weights and their EMA
  for (const auto& [name, tensor] : gm::test::checkpoint_tensors(a.out + "/checkpoint.pt"))
    saved += name.find("pseudo_inputs") != std::string::npos ||
             name.find("encoder_class") != std::string::npos ||
             name.find("decoder_class") != std::string::npos;
  EXPECT_GE(saved, 6);
}

// model.arch=ladder through the registry: the hierarchical VAE draws the requested class, reports
// its bound and resumes bit-identically.
TEST(VaeLearning, LadderVaeDrawsTheRequestedClassAndResumes) {
  gm::test::TempDir dir("gm_vae_ladder");
  gm::test::write_three_class_folder(dir.file("data"), 100);
  gm::TrainArgs a;
  a.model = "vae";
  a.data = "folder:" + dir.file("data");
  a.out = dir.file("run");
  a.seed = 3;
  a.threads = 2;
  a.steps = 300;
  a.sets = {"train.batch_size=64",    "train.log_every=1000", "train.lr=2e-3",
            "model.arch=ladder",      "model.channels=16",    "model.ladder_latent=2",
            "model.ladder_layers=1,1"};
  gm::run_train(a);
  EXPECT_TRUE(fs::exists(dir.file("run/samples/reconstructions.png")));
  gm::SampleArgs s;
  s.run = a.out;
  s.n = 60;
  s.seed = 9;
  s.quiet = true;
  for (int64_t c = 0; c < 3; ++c) {
    s.class_label = c;
    const gm::SampleResult r = gm::sample_run(s);
    const double share = gm::test::share_nearest_class(r.x, c);
    std::cout << "ladder class " << c << ": " << share << " of samples nearest its mean\n";
    EXPECT_GE(share, 0.9) << "class " << c;
  }
  gm::EvalArgs e;
  e.target = a.out;
  e.metrics = {"nll"};
  e.nll_n = 30;
  e.k = 20;
  e.json = dir.file("eval.json");
  const gm::Json l = gm::run_eval(e).result.at("likelihood");
  EXPECT_NE(l.at("prior").get<std::string>().find("hierarchical"), std::string::npos);
  EXPECT_GT(l.at("bits_per_dim").get<double>(), 4.0);
  EXPECT_LT(l.at("bits_per_dim").get<double>(), 7.8);
  // Resume: 10 steps at once equal 6 + 4 resumed.
  a.steps = 10;
  a.out = dir.file("once");
  EXPECT_GT(gm::test::expect_bit_identical_resume(a, dir.file("split"), 6), 10);
  // Bad settings are one line naming the key.
  gm::TrainArgs bad = a;
  bad.out = dir.file("bad");
  bad.sets.push_back("model.ladder_layers=2,x");
  EXPECT_NE(gm::test::error_of([&] { gm::run_train(bad); }).find("model.ladder_layers"),
            std::string::npos);
  bad.sets.back() = "model.prior=vamp";
  EXPECT_NE(gm::test::error_of([&] { gm::run_train(bad); }).find("model.prior=vamp"),
            std::string::npos);
}
