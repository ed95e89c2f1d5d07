// The train-step contract (train/step.h) with a tiny two-optimizer model: alternating critic and
// generator steps (n_critic = 2, the critic drawing its own extra batch), an EMA of the generator
// only, named losses in the log, and bit-identical resume of every optimizer and EMA by name.
#include <gtest/gtest.h>

#include <map>

#include "genmodels/core/jsonl.h"
#include "genmodels/data/toy2d.h"
#include "genmodels/train/checkpoint.h"
#include "genmodels/train/trainer.h"
#include "test_util.h"

namespace {

using gm::train::StepContext;

struct TinyGanNet : torch::nn::Module {
  TinyGanNet() {
    g = register_module("g", torch::nn::Sequential(torch::nn::Linear(4, 16), torch::nn::ReLU(),
                                                   torch::nn::Linear(16, 2)));
    d = register_module("d", torch::nn::Sequential(torch::nn::Linear(2, 16), torch::nn::ReLU(),
                                                   torch::nn::Linear(16, 1)));
  }
  torch::nn::Sequential g{nullptr}, d{nullptr};
};

// Non-saturating GAN (Goodfellow et al. 2014, Sec. 3) with two critic steps per generator step.
struct TinyGan : gm::train::Trainable {
  std::shared_ptr<TinyGanNet> net = std::make_shared<TinyGanNet>();
  torch::nn::Module& module() override { return *net; }
  std::vector<gm::train::OptimizerSpec> optimizers(
      const gm::train::OptimizerOptions& main) override {
    gm::train::OptimizerOptions d = main;
    d.lr.lr = 2 * main.lr.lr;  // TTUR
    d.beta1 = 0.0;
    d.beta2 = 0.9;
    return {{"g", net->g->parameters(), main}, {"d", net->d->parameters(), d}};
  }
  std::vector<gm::train::EmaSpec> ema_targets() override { return {{"g", net->g.get()}}; }
  void train_step(const gm::data::Batcher::Batch& batch, StepContext& ctx) override {
    for (int i = 0; i < 2; ++i) {
      torch::Tensor real = i == 0 ? batch.x : ctx.next_batch().x;
      torch::Tensor fake = net->g->forward(torch::randn({real.size(0), 4})).detach();
      torch::Tensor d_real = net->d->forward(real);
      torch::Tensor loss_d =
          torch::softplus(-d_real).mean() + torch::softplus(net->d->forward(fake)).mean();
      ctx.minimize("d", loss_d);
      ctx.log("d_real", torch::sigmoid(d_real).mean().item<double>());
    }
    torch::Tensor fake = net->g->forward(torch::randn({batch.x.size(0), 4}));
    ctx.minimize("g", torch::softplus(-net->d->forward(fake)).mean());
  }
};

gm::data::Dataset toy_data() {
  gm::data::Dataset d;
  d.name = "8gaussians";
  d.x = gm::data::sample_toy2d("8gaussians", 512, 1);
  d.y = torch::zeros({512}, torch::kInt64);
  return d;
}

gm::train::TrainerOptions options(int64_t steps) {
  gm::train::TrainerOptions o;
  o.steps = steps;
  o.batch_size = 32;
  o.lr = 1e-3;
  o.warmup_steps = 3;
  o.lr_schedule = "cosine";
  o.ema_decay = 0.9;
  o.log_every = 5;
  o.checkpoint_every = 7;
  return o;
}

// Trains a fresh model (same init) into `dir`; stop_at > 0 interrupts, resume continues.
void train(const std::string& dir, int64_t steps, int64_t stop_at, bool resume) {
  torch::manual_seed(11);
  TinyGan model;
  gm::train::TrainerOptions o = options(steps);
  o.stop_at = stop_at;
  gm::train::Trainer t(model, o, gm::data::Batcher(toy_data(), o.batch_size, 5),
                       gm::train::RunDir(dir), {{"model", "tiny-gan"}, {"format", 2}});
  if (resume) t.resume();
  t.run();
}

}  // namespace

TEST(TrainStep, TwoOptimizerResumeIsBitIdentical) {
  gm::test::TempDir tmp;
  const std::string straight = tmp.file("straight"), split = tmp.file("split");
  train(straight, 30, 0, false);
  train(split, 30, 13, false);  // behaves like SIGINT after step 13
  train(split, 30, 0, true);

  const auto a = gm::test::checkpoint_tensors(straight + "/checkpoint.pt");
  const auto b = gm::test::checkpoint_tensors(split + "/checkpoint.pt");
  ASSERT_EQ(a.size(), b.size());
  int optimizer_g = 0, optimizer_d = 0, ema_g = 0;
  for (const auto& [name, t] : a) {
    optimizer_g += name.rfind("optimizer/g/", 0) == 0;
    optimizer_d += name.rfind("optimizer/d/", 0) == 0;
    // Optimizer states are keyed by tensor addresses (LibTorch's format): weights after resumed
    // steps that used them are the check. Everything else must match exactly.
    if (name == "elapsed" || name.rfind("optimizer/", 0) == 0) continue;
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
    ema_g += name.rfind("ema/g/", 0) == 0;
    EXPECT_NE(name.rfind("ema/d", 0), 0u) << "the critic has no EMA: " << name;
  }
  EXPECT_GT(optimizer_g, 0);
  EXPECT_GT(optimizer_d, 0);
  EXPECT_EQ(ema_g, 4);  // the generator's two weights and two biases
  // Two batches per step (the given one and the critic's extra one): 60 batches = 3 epochs of 16
  // batches + 12, restored on resume.
  EXPECT_EQ(a.at("data_epoch").item<int64_t>(), 3);
  EXPECT_EQ(a.at("data_position").item<int64_t>(), 12 * 32);

  // Every named value is logged, and the records of the two runs agree.
  const auto la = gm::read_jsonl(straight + "/metrics.jsonl");
  const auto lb = gm::read_jsonl(split + "/metrics.jsonl");
  ASSERT_EQ(la.back()["step"], 30);
  ASSERT_EQ(lb.back()["step"], 30);
  for (const char* key : {"loss_g", "loss_d", "grad_norm_g", "grad_norm_d", "lr_g", "lr_d",
                          "d_real", "img_per_s", "wall_time"})
    EXPECT_TRUE(la.back().contains(key)) << key;
  for (const char* key : {"loss_g", "loss_d", "d_real", "lr_g"})
    EXPECT_EQ(la.back()[key].get<double>(), lb.back()[key].get<double>()) << key;
  // Each optimizer follows its own LR schedule (the critic's peak is twice the generator's).
  EXPECT_NEAR(la[1]["lr_d"].get<double>(), 2 * la[1]["lr_g"].get<double>(), 1e-15);
}

TEST(TrainStep, EmaOfTheGeneratorIsSwappedIn) {
  gm::test::TempDir tmp;
  train(tmp.file("run"), 10, 0, false);
  TinyGan raw, averaged;
  gm::train::load_checkpoint_weights(tmp.file("run/checkpoint.pt"), raw.module(), {});
  gm::train::load_checkpoint_weights(tmp.file("run/checkpoint.pt"), averaged.module(),
                                     averaged.ema_targets());
  // The generator's weights differ (EMA), the critic's are the raw ones.
  EXPECT_FALSE(torch::equal(raw.net->g->parameters()[0], averaged.net->g->parameters()[0]));
  EXPECT_TRUE(torch::equal(raw.net->d->parameters()[0], averaged.net->d->parameters()[0]));
}

TEST(TrainStep, UnknownOptimizerAndBadLossAreClearErrors) {
  struct Wrong : TinyGan {
    void train_step(const gm::data::Batcher::Batch& b, StepContext& ctx) override {
      ctx.minimize("main", net->d->forward(b.x).mean());
    }
  };
  gm::test::TempDir tmp;
  Wrong model;
  gm::train::TrainerOptions o = options(2);
  gm::train::Trainer t(model, o, gm::data::Batcher(toy_data(), 32, 5),
                       gm::train::RunDir(tmp.file("w")), {{"model", "wrong"}});
  const std::string msg = gm::test::error_of([&] { t.run(); });
  EXPECT_NE(msg.find("optimizer 'main'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("g, d"), std::string::npos) << msg;

  struct Nan : TinyGan {
    void train_step(const gm::data::Batcher::Batch& b, StepContext& ctx) override {
      ctx.minimize("d", net->d->forward(b.x).mean() * std::nan(""));
    }
  };
  Nan nan_model;
  gm::train::Trainer t2(nan_model, o, gm::data::Batcher(toy_data(), 32, 5),
                        gm::train::RunDir(tmp.file("n")), {{"model", "nan"}});
  const std::string nan_msg = gm::test::error_of([&] { t2.run(); });
  EXPECT_NE(nan_msg.find("optimizer 'd' is nan at step 1"), std::string::npos) << nan_msg;
  EXPECT_NE(nan_msg.find("untouched"), std::string::npos) << nan_msg;
}

TEST(TrainStep, PerOptimizerBf16Autocast) {
  // The critic's optimizer asks for bf16: its forward passes run under autocast, the
  // generator's do not; the losses stay fp32 scalars.
  struct Mixed : TinyGan {
    std::vector<gm::train::OptimizerSpec> optimizers(
        const gm::train::OptimizerOptions& main) override {
      auto specs = TinyGan::optimizers(main);
      specs[1].options.bf16 = true;
      return specs;
    }
    void train_step(const gm::data::Batcher::Batch& b, StepContext& ctx) override {
      torch::Tensor loss_d;
      {
        auto scope = ctx.autocast("d");
        torch::Tensor out = net->d->forward(b.x);
        d_dtype = out.scalar_type();
        loss_d = torch::softplus(-out.to(torch::kFloat)).mean();
      }
      ctx.minimize("d", loss_d);
      auto scope = ctx.autocast("g");
      torch::Tensor fake = net->g->forward(torch::randn({b.x.size(0), 4}));
      g_dtype = fake.scalar_type();
      ctx.minimize("g", torch::softplus(-net->d->forward(fake)).mean());
    }
    c10::ScalarType d_dtype = c10::ScalarType::Undefined, g_dtype = c10::ScalarType::Undefined;
  };
  gm::test::TempDir tmp;
  Mixed model;
  gm::train::Trainer t(model, options(3), gm::data::Batcher(toy_data(), 32, 5),
                       gm::train::RunDir(tmp.file("m")), {{"model", "mixed"}});
  t.run();
  EXPECT_EQ(model.d_dtype, torch::kBFloat16);
  EXPECT_EQ(model.g_dtype, torch::kFloat);
  for (const auto& p : model.net->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
}
