// Shared training infrastructure through the registry: bit-identical resume, NaN stop that leaves
// the last good checkpoint untouched, clear errors for corrupt checkpoints, seeded reproducibility.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/core/jsonl.h"
#include "genmodels/core/runtime.h"
#include "genmodels/models/run.h"
#include "genmodels/train/checkpoint.h"
#include "genmodels/train/trainer.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

std::string fresh_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("gm_models_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d.string();
}

gm::TrainArgs toy_args(const std::string& out, int64_t steps,
                       const std::vector<std::string>& extra = {}) {
  gm::TrainArgs a;
  a.model = "ddpm";
  a.data = "8gaussians";
  a.out = out;
  a.steps = steps;
  a.seed = 3;
  a.threads = 2;
  a.sets = {"train.batch_size=64",      "train.warmup_steps=5", "train.lr_schedule=cosine",
            "train.checkpoint_every=7", "train.log_every=5",    "model.mlp_hidden=64",
            "model.mlp_depth=2",        "train.ema_decay=0.9",  "diffusion.timesteps=100"};
  a.sets.insert(a.sets.end(), extra.begin(), extra.end());
  return a;
}

std::map<std::string, torch::Tensor> tensors_of(const std::string& ckpt,
                                                const std::string& section) {
  return gm::test::checkpoint_tensors(ckpt, section);
}

}  // namespace

void expect_bit_identical_resume(const std::vector<std::string>& extra) {
  const std::string straight = fresh_dir("straight"), split = fresh_dir("split");
  gm::run_train(toy_args(straight, 40, extra));

  gm::TrainArgs first = toy_args(split, 40, extra);
  first.stop_at = 20;  // behaves like SIGINT after step 20: checkpoint, exit
  gm::run_train(first);
  gm::TrainArgs second = toy_args(split, 40, extra);
  second.resume = true;
  second.data.reset();
  gm::run_train(second);

  for (const std::string section : {"model", "ema"}) {
    auto a = tensors_of(straight + "/checkpoint.pt", section);
    auto b = tensors_of(split + "/checkpoint.pt", section);
    ASSERT_FALSE(a.empty());
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, t] : a)
      EXPECT_TRUE(torch::equal(t, b.at(name))) << section << "/" << name;
  }
  auto la = gm::read_jsonl(straight + "/metrics.jsonl");
  auto lb = gm::read_jsonl(split + "/metrics.jsonl");
  ASSERT_EQ(la.back()["step"], 40);
  ASSERT_EQ(lb.back()["step"], 40);
  EXPECT_EQ(la.back()["loss"].get<double>(), lb.back()["loss"].get<double>());
}

TEST(Resume, HalfPlusResumeIsBitIdentical) { expect_bit_identical_resume({}); }

// Improved DDPM: the importance sampler's loss history is in the checkpoint (T = 100 warms up
// after 1000 draws, inside the 40 x 64 of this run).
TEST(Resume, LearnedVarianceWithImportanceSamplingResumesBitIdentically) {
  expect_bit_identical_resume({"diffusion.learn_sigma=true", "diffusion.importance_sampling=true"});
}

TEST(Resume, SameSeedSameWeights) {
  const std::string a = fresh_dir("seed_a"), b = fresh_dir("seed_b");
  gm::run_train(toy_args(a, 10));
  gm::run_train(toy_args(b, 10));
  auto ta = tensors_of(a + "/checkpoint.pt", "model");
  auto tb = tensors_of(b + "/checkpoint.pt", "model");
  for (const auto& [name, t] : ta) EXPECT_TRUE(torch::equal(t, tb.at(name))) << name;
}

TEST(Resume, NonFiniteLossStopsAndKeepsLastGoodCheckpoint) {
  const std::string dir = fresh_dir("nan");
  gm::run_train(toy_args(dir, 10));
  const auto before = tensors_of(dir + "/checkpoint.pt", "model");
  gm::TrainArgs blow = toy_args(dir, 200);
  blow.resume = true;
  blow.sets.push_back("train.lr=1e30");
  blow.sets.push_back("train.grad_clip=0");
  blow.sets.push_back("train.warmup_steps=0");
  try {
    gm::run_train(blow);
    FAIL() << "expected the loss to blow up";
  } catch (const gm::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("at step"), std::string::npos) << msg;
    EXPECT_NE(msg.find("untouched"), std::string::npos) << msg;
  }
  const auto after = tensors_of(dir + "/checkpoint.pt", "model");
  for (const auto& [name, t] : before) EXPECT_TRUE(torch::equal(t, after.at(name))) << name;
}

TEST(Resume, CorruptCheckpointIsOneLineError) {
  const std::string dir = fresh_dir("corrupt");
  gm::run_train(toy_args(dir, 5));
  { std::ofstream(dir + "/checkpoint.pt", std::ios::trunc) << "garbage"; }
  gm::SampleArgs s;
  s.run = dir;
  s.quiet = true;
  try {
    gm::sample_run(s);
    FAIL();
  } catch (const gm::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(dir + "/checkpoint.pt"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
}

TEST(Resume, ExistingRunWithoutResumeIsRefused) {
  const std::string dir = fresh_dir("exists");
  gm::run_train(toy_args(dir, 3));
  EXPECT_THROW(gm::run_train(toy_args(dir, 3)), gm::Error);
}

TEST(Resume, CrashWhileWritingCheckpointKeepsPreviousLoadable) {
  const std::string dir = fresh_dir("crashwrite");
  gm::run_train(toy_args(dir, 5));
  const std::string ckpt = dir + "/checkpoint.pt";
  const auto before = tensors_of(ckpt, "model");
  // A writer that dies half-way through a new checkpoint (as a crash or full disk would).
  EXPECT_THROW(gm::write_file_atomic(ckpt,
                                     [](std::ostream& out) {
                                       out << std::string(1000, 'x');
                                       throw std::runtime_error("crash mid-write");
                                     }),
               std::runtime_error);
  EXPECT_EQ(gm::train::read_checkpoint_meta(ckpt)["model"], "ddpm");
  const auto after = tensors_of(ckpt, "model");
  for (const auto& [name, t] : before) EXPECT_TRUE(torch::equal(t, after.at(name))) << name;
  gm::TrainArgs more = toy_args(dir, 8);
  more.resume = true;
  EXPECT_NO_THROW(gm::run_train(more));
}
