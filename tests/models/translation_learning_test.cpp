// pix2pix and CycleGAN through the registry, the trainer and `translate`: pix2pix learns a paired
// task (inversion x -> 1 - x of smooth random images, held-out test folder) to a low L1; CycleGAN's
// cycle loss falls on an unpaired task; a four-optimizer CycleGAN run resumed mid-way is
// bit-identical (generators, discriminators, EMAs, image pools, RNG); bad input is one line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "genmodels/core/json.h"
#include "genmodels/io/image.h"
#include "genmodels/models/run.h"
#include "resume_check.h"
#include "test_util.h"

namespace {

// n smooth random gray images in [0, 1], size x size (bilinear upsampling of 4x4 noise).
torch::Tensor smooth_images(int64_t n, int64_t size, uint64_t seed) {
  torch::manual_seed(seed);
  const torch::Tensor low = torch::rand({n, 1, 4, 4});
  return torch::nn::functional::interpolate(low, torch::nn::functional::InterpolateFuncOptions()
                                                     .size(std::vector<int64_t>{size, size})
                                                     .mode(torch::kBilinear)
                                                     .align_corners(false))
      .clamp(0, 1);
}

void write01(const std::string& path, const torch::Tensor& hw) {
  gm::io::write_png(path, (hw * 255).round().to(torch::kUInt8).contiguous());
}

// DIR/{train,test}/NNN.png holding A | B = x | 1 - x side by side.
std::string inversion_pairs(const std::string& dir) {
  for (const auto& [split, n, seed] :
       std::vector<std::tuple<std::string, int64_t, uint64_t>>{{"train", 96, 1}, {"test", 16, 2}}) {
    std::filesystem::create_directories(dir + "/" + split);
    const torch::Tensor x = smooth_images(n, 16, seed);
    for (int64_t i = 0; i < n; ++i)
      write01(dir + "/" + split + "/" + std::to_string(1000 + i) + ".png",
              torch::cat({x[i][0], 1 - x[i][0]}, 1));
  }
  return dir;
}

// Two unpaired folders: A = smooth images, B = inverted smooth images (other draws).
std::pair<std::string, std::string> inversion_domains(const std::string& dir) {
  const std::string a = dir + "/A", b = dir + "/B";
  std::filesystem::create_directories(a);
  std::filesystem::create_directories(b);
  const torch::Tensor xa = smooth_images(48, 16, 3), xb = 1 - smooth_images(48, 16, 4);
  for (int64_t i = 0; i < 48; ++i) {
    write01(a + "/" + std::to_string(i) + ".png", xa[i][0]);
    write01(b + "/" + std::to_string(i) + ".png", xb[i][0]);
  }
  return {a, b};
}

gm::TrainArgs cyclegan_args(const std::string& a, const std::string& b, const std::string& out,
                            int64_t steps) {
  gm::TrainArgs t;
  t.model = "cyclegan";
  t.data = "folder:" + a;
  t.data_b = "folder:" + b;
  t.out = out;
  t.steps = steps;
  t.seed = 4;
  t.threads = 2;
  t.sets = {"model.g_channels=8", "model.g_blocks=2",   "model.d_channels=8",
            "train.batch_size=8", "train.log_every=10", "model.pool_size=6"};
  return t;
}

std::vector<double> logged(const std::string& metrics_path, const std::string& key) {
  std::vector<double> out;
  std::ifstream f(metrics_path);
  for (std::string line; std::getline(f, line);) {
    const gm::Json j = gm::Json::parse(line);
    if (j.contains(key)) out.push_back(j[key].get<double>());
  }
  return out;
}

// pix2pix on the inversion pairs in `data` (300 steps, small networks) and `translate` of its
// held-out test split into `out`.
std::pair<gm::TranslateArgs, gm::TranslateResult> pix2pix_inversion(
    const std::string& data, const std::string& run, const std::string& out,
    const std::vector<std::string>& extra_sets = {}, int64_t steps = 300) {
  gm::TrainArgs t;
  t.model = "pix2pix";
  t.data = "paired:" + data;
  t.out = run;
  t.steps = steps;
  t.seed = 1;
  t.threads = 2;
  t.sets = {"model.g_channels=16", "model.d_channels=16", "train.batch_size=16",
            "train.log_every=50"};
  t.sets.insert(t.sets.end(), extra_sets.begin(), extra_sets.end());
  gm::run_train(t);
  gm::TranslateArgs tr;
  tr.run = run;
  tr.input = "paired:" + data;  // its test split: held-out pairs
  tr.out = out;
  tr.quiet = true;
  return {tr, gm::run_translate(tr)};
}

}  // namespace

TEST(TranslationLearning, Pix2PixLearnsAPairedTask) {
  gm::test::TempDir tmp;
  const std::string data = inversion_pairs(tmp.file("pairs"));
  auto [tr, r] = pix2pix_inversion(data, tmp.file("run"), tmp.file("translated"));
  std::cout << "pix2pix inversion: held-out L1 " << r.metrics["l1"] << ", PSNR "
            << r.metrics["psnr"] << "\n";
  EXPECT_EQ(r.metrics["n"].get<int64_t>(), 16);
  EXPECT_LT(r.metrics["l1"].get<double>(), 0.06);
  EXPECT_TRUE(std::filesystem::exists(tr.out + "/grid.png"));
  EXPECT_EQ(gm::io::read_png_text(tr.out + "/000003.png").at("source"), tr.input + "#3");

  // A folder of inputs made elsewhere translates too; the trained direction is the only one.
  const std::string inputs = tmp.file("inputs");
  std::filesystem::create_directories(inputs);
  write01(inputs + "/a.png", smooth_images(1, 16, 9)[0][0]);
  tr.input = inputs;
  tr.out = tmp.file("translated2");
  EXPECT_EQ(gm::run_translate(tr).metrics["n"].get<int64_t>(), 1);
  EXPECT_EQ(gm::io::read_png_text(tr.out + "/000000.png").at("source"), "a.png");
  tr.direction = "BtoA";
  const std::string m = gm::test::error_of([&] { gm::run_translate(tr); });
  EXPECT_NE(m.find("translates AtoB only"), std::string::npos) << m;
}

// The same task with the networks under bf16 autocast (weights and losses fp32): it learns as well,
// in half the steps (a CPU without native bf16 emulates it, 6x slower than fp32 on an AVX2 EPYC).
TEST(TranslationLearning, Pix2PixLearnsInBf16) {
  gm::test::TempDir tmp;
  const std::string data = inversion_pairs(tmp.file("pairs"));
  const auto r = pix2pix_inversion(data, tmp.file("run"), tmp.file("translated"),
                                   {"model.precision=bf16"}, 150)
                     .second;
  std::cout << "pix2pix inversion, bf16: held-out L1 " << r.metrics["l1"] << "\n";
  EXPECT_LT(r.metrics["l1"].get<double>(), 0.06);
}

TEST(TranslationLearning, CycleGanCycleLossFalls) {
  gm::test::TempDir tmp;
  const auto [a, b] = inversion_domains(tmp.file("domains"));
  gm::TrainArgs t = cyclegan_args(a, b, tmp.file("run"), 80);
  gm::run_train(t);
  const auto cycle = logged(t.out + "/metrics.jsonl", "cycle_l1_a");
  ASSERT_GE(cycle.size(), 4u);
  std::cout << "cyclegan cycle L1 (A): first " << cycle.front() << ", last " << cycle.back()
            << "\n";
  EXPECT_LT(cycle.back(), 0.8 * cycle.front());
  gm::TranslateArgs tr;
  tr.run = t.out;
  tr.input = b;
  tr.direction = "BtoA";
  tr.out = tmp.file("translated");
  tr.grid_only = true;
  tr.quiet = true;
  const gm::TranslateResult r = gm::run_translate(tr);
  EXPECT_EQ(r.metrics["direction"], "BtoA");
  EXPECT_LT(r.metrics["cycle_l1"].get<double>(), 0.2);
}

TEST(TranslationLearning, FourOptimizerResumeIsBitIdentical) {
  gm::test::TempDir tmp;
  const auto [a, b] = inversion_domains(tmp.file("domains"));
  gm::TrainArgs straight = cyclegan_args(a, b, tmp.file("straight"), 12);
  straight.sets.push_back("train.checkpoint_every=4");
  EXPECT_GT(gm::test::expect_bit_identical_resume(straight, tmp.file("split"), 7), 40);
  const auto ta = gm::test::checkpoint_tensors(straight.out + "/checkpoint.pt");
  for (const char* key : {"model/pool_a/images", "model/pool_b/count", "ema/g_a/conv_in.weight",
                          "ema/g_b/conv_in.weight", "model/d_b/conv0/weight"})
    EXPECT_TRUE(ta.count(key)) << key;
  int optimizers = 0;
  for (const char* name : {"g_a", "g_b", "d_a", "d_b"})
    for (const auto& [key, t] : ta)
      if (key.rfind(std::string("optimizer/") + name + "/", 0) == 0) {
        ++optimizers;
        break;
      }
  EXPECT_EQ(optimizers, 4);
}

TEST(TranslationLearning, BadInputIsOneLine) {
  gm::test::TempDir tmp;
  auto err = [&](gm::TrainArgs t) {
    const std::string m = gm::test::error_of([&] { gm::run_train(t); });
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    return m;
  };
  gm::TrainArgs t;
  t.model = "pix2pix";
  t.data = "moons";
  t.out = tmp.file("bad");
  t.steps = 1;
  EXPECT_NE(err(t).find("paired dataset"), std::string::npos);
  const auto [a, b] = inversion_domains(tmp.file("domains"));
  gm::TrainArgs c = cyclegan_args(a, b, tmp.file("bad2"), 1);
  c.sets.push_back("data.channels=3");
  c.data_b = "fmnist-edges";
  EXPECT_NE(err(c).find("paired dataset"), std::string::npos);
  c = cyclegan_args(a, tmp.file("nowhere"), tmp.file("bad3"), 1);
  EXPECT_NE(err(c).find(tmp.file("nowhere")), std::string::npos);
}
