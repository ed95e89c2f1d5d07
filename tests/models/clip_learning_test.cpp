// clip through the registry, the trainer and `eval --metrics zeroshot`: a small CLIP on a few
// thousand Fashion-MNIST images learns zero-shot classification well above chance with wording it
// never trained on; its BPE vocabulary is in the run and the checkpoint; a run resumed mid-way is
// bit-identical (captions are drawn from the training RNG); bad input is one line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "clip/wordnet_fixture.h"
#include "genmodels/clip/bpe.h"
#include "genmodels/core/error.h"
#include "genmodels/core/jsonl.h"
#include "genmodels/data/dataset.h"
#include "genmodels/io/image.h"
#include "genmodels/io/npy.h"
#include "genmodels/models/run.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

std::string fresh_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("gm_clip_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d.string();
}

gm::TrainArgs clip_args(const std::string& out, int64_t steps) {
  gm::TrainArgs a;
  a.model = "clip";
  a.data = "fashion-mnist";
  a.out = out;
  a.steps = steps;
  a.seed = 2;
  a.threads = 2;
  a.sets = {"data.limit=4000",      "model.patch=7",        "model.width=64",
            "model.layers=2",       "model.text_width=64",  "model.text_layers=2",
            "model.embed_dim=32",   "model.bpe_merges=120", "model.bpe_corpus=3000",
            "train.batch_size=128", "train.lr=1e-3",        "train.warmup_steps=20",
            "train.eval_every=0",   "train.log_every=10",   "train.ema_decay=0.9"};
  return a;
}

}  // namespace

TEST(ClipLearning, ZeroShotWellAboveChanceOnHeldOutWording) {
  const std::string dir = fresh_dir("learn");
  gm::run_train(clip_args(dir, 250));
  // The vocabulary: in the run as bpe.json, with as many merges as the checkpoint's buffer holds.
  const gm::clip::Bpe bpe = gm::clip::Bpe::load(dir + "/bpe.json");
  EXPECT_GT(bpe.merges().size(), 50u);
  const auto t = gm::test::checkpoint_tensors(dir + "/checkpoint.pt", "model");
  const torch::Tensor merges = t.at("bpe_merges");
  EXPECT_EQ(merges.select(1, 0).ge(0).sum().item<int64_t>(),
            static_cast<int64_t>(bpe.merges().size()));
  // Learning: the contrastive loss falls and the held-out wording classifies the test set.
  const auto log = gm::read_jsonl(dir + "/metrics.jsonl");
  EXPECT_LT(log.back()["loss"].get<double>(), 0.7 * log.front()["loss"].get<double>());
  gm::EvalArgs e;
  e.target = dir;
  e.metrics = {"zeroshot"};
  e.n = 1000;
  const gm::EvalResult r = gm::run_eval(e);
  const gm::Json& zs = r.result.at("zeroshot");
  // (Chance is 0.1; 250 steps on 4,000 images reach about 0.5 held out, 0.75 with the training
  // wording.)
  EXPECT_GT(zs.at("zeroshot_accuracy_held_out").get<double>(), 0.35) << zs.dump();
  EXPECT_GT(zs.at("zeroshot_accuracy_train_wording").get<double>(), 0.6) << zs.dump();
  // Retrieval beats chance (1 in 1000 at rank 1, 5 in 1000 at rank 5) by far.
  EXPECT_GT(zs.at("image_to_text_recall@5").get<double>(), 0.02) << zs.dump();
  EXPECT_GT(zs.at("text_to_image_recall@5").get<double>(), 0.02) << zs.dump();
  // CLIP score: test images against their own class prompts beat the same images against the
  // next class's, and one --prompt for all works; without --clip it is a one-line error.
  gm::data::DataOptions o;
  o.split = "test";
  o.limit = 300;
  const gm::data::Dataset test = gm::data::load_dataset("fashion-mnist", o);
  const std::string npy = dir + "/real.npy";
  gm::io::write_npy(npy, gm::io::to_uint8(test.x).squeeze(-1));
  auto clip_score = [&](const torch::Tensor& labels, const std::string& prompt) {
    gm::io::write_npy(dir + "/real.labels.npy", labels);
    gm::EvalArgs c;
    c.target = npy;
    c.metrics = {"clip_score"};
    c.clip = dir;
    c.prompt = prompt;
    return gm::run_eval(c).result.at("metrics").at("clip_score").at("value").get<double>();
  };
  const double right = clip_score(test.y, ""), wrong = clip_score((test.y + 1) % 10, "");
  EXPECT_GT(right, wrong + 5) << right << " vs " << wrong;
  EXPECT_GT(clip_score(test.y, "a snapshot of a running shoe"), 0.0);
  gm::EvalArgs no_clip;
  no_clip.target = npy;
  no_clip.metrics = {"clip_score"};
  EXPECT_THROW(gm::run_eval(no_clip), gm::Error);

  // clip draws no images: sample and image metrics say what to use instead.
  gm::SampleArgs s;
  s.run = dir;
  try {
    gm::run_sample(s);
    ADD_FAILURE() << "sampling a clip run should fail";
  } catch (const gm::Error& err) {
    EXPECT_NE(std::string(err.what()).find("--metrics zeroshot"), std::string::npos) << err.what();
  }
}

// With a lexicon (model.lexicon, a miniature WordNet), whose entries and templates are drawn from
// the same training RNG as the captions.
TEST(ClipLearning, ResumeIsBitIdentical) {
  const std::string straight = fresh_dir("straight"), split = fresh_dir("split");
  const std::string wordnet = fresh_dir("wordnet");
  gm::test::write_mini_wordnet(wordnet);
  auto args = [&](const std::string& out) {
    gm::TrainArgs a = clip_args(out, 16);
    a.sets.push_back("model.lexicon=" + wordnet);
    a.sets.push_back("model.lexicon_roots=clothing#1");
    return a;
  };
  gm::run_train(args(straight));
  const auto log = gm::read_jsonl(straight + "/metrics.jsonl");
  ASSERT_TRUE(log.back().contains("lexicon_loss"));
  EXPECT_GT(log.back()["lexicon_loss"].get<double>(), 0.0);
  gm::TrainArgs first = args(split);
  first.stop_at = 8;
  gm::run_train(first);
  gm::TrainArgs second = args(split);
  second.resume = true;
  second.data.reset();
  gm::run_train(second);
  // Weights, EMA, buffers (BPE merges, thresholds) and RNG state, all equal.
  EXPECT_GT(gm::test::expect_same_checkpoint_tensors(straight + "/checkpoint.pt",
                                                     split + "/checkpoint.pt"),
            50);
}

TEST(ClipLearning, BadInputIsOneLine) {
  gm::TrainArgs a = clip_args(fresh_dir("bad"), 5);
  a.data = "8gaussians";
  EXPECT_THROW(
      {
        try {
          gm::run_train(a);
        } catch (const gm::Error& e) {
          EXPECT_NE(std::string(e.what()).find("clip trains on fashion-mnist"), std::string::npos);
          throw;
        }
      },
      gm::Error);
  a = clip_args(fresh_dir("bad2"), 5);
  a.sets.push_back("model.patch=5");
  EXPECT_THROW(gm::run_train(a), gm::Error);
  a = clip_args(fresh_dir("bad3"), 5);
  a.sets.push_back("model.bpe_dropout=1");
  try {
    gm::run_train(a);
    ADD_FAILURE() << "model.bpe_dropout=1 was accepted";
  } catch (const gm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.bpe_dropout = 1 must be in [0, 1)"),
              std::string::npos)
        << e.what();
  }
  a = clip_args(fresh_dir("bad4"), 5);
  a.sets.push_back("model.lexicon=/nonexistent/wordnet");
  const std::string msg = gm::test::error_of([&] { gm::run_train(a); });
  EXPECT_NE(msg.find("/nonexistent/wordnet/index.noun"), std::string::npos) << msg;
  EXPECT_NE(msg.find("apt-get install wordnet-base"), std::string::npos) << msg;
  a = clip_args(fresh_dir("bad5"), 5);
  a.sets.push_back("model.lexicon=/usr/share/wordnet");
  a.sets.push_back("model.lexicon_batch=0");
  EXPECT_NE(gm::test::error_of([&] { gm::run_train(a); }).find("model.lexicon_batch must be >= 1"),
            std::string::npos);
}

// captions:DIR: 16x16 images of four kinds (square or disk, bright or dim) with their caption
// files, in varied case and spacing. The caption loss falls towards its floor (each caption is
// shared by a quarter of the batch), and eval reports retrieval only (no classes to prompt for).
TEST(ClipLearning, TrainsOnACaptionFolder) {
  const std::string data = fresh_dir("captions_data"), dir = fresh_dir("captions_run");
  fs::create_directories(data);
  torch::manual_seed(7);
  const char* words[4] = {"A bright  square", "a dim square", "a bright DISK", "a dim disk"};
  for (int64_t i = 0; i < 96; ++i) {
    const int64_t kind = i % 4;
    const double value = kind % 2 == 0 ? 1.0 : 0.45;
    const int64_t cy = 5 + torch::randint(0, 6, {1}).item<int64_t>();
    const int64_t cx = 5 + torch::randint(0, 6, {1}).item<int64_t>();
    const torch::Tensor yy = torch::arange(16).view({16, 1}).expand({16, 16}) - cy;
    const torch::Tensor xx = torch::arange(16).view({1, 16}).expand({16, 16}) - cx;
    const torch::Tensor shape =
        kind < 2 ? (yy.abs() <= 3) & (xx.abs() <= 3) : (yy * yy + xx * xx) <= 12;
    const torch::Tensor img = (shape.to(torch::kFloat) * value * 255).round().to(torch::kUInt8);
    const std::string stem = data + "/" + std::to_string(1000 + i);
    gm::io::write_png(stem + ".png", img.unsqueeze(2).contiguous());
    std::ofstream(stem + ".txt") << words[kind] << "\n";
  }
  gm::TrainArgs a = clip_args(dir, 80);
  a.data = "captions:" + data;
  a.sets = {"model.patch=4",         "model.width=32",      "model.layers=1",
            "model.text_width=32",   "model.text_layers=1", "model.embed_dim=16",
            "model.bpe_merges=20",   "train.batch_size=32", "train.lr=2e-3",
            "train.warmup_steps=10", "train.eval_every=0",  "train.log_every=10"};
  gm::run_train(a);
  const auto log = gm::read_jsonl(dir + "/metrics.jsonl");
  // Chance is log 32 = 3.47 (the first record averages steps 1-10); the floor with 8 images per
  // caption is log 8 = 2.08.
  EXPECT_GT(log.front()["loss"].get<double>(), 2.9);
  EXPECT_LT(log.back()["loss"].get<double>(), 2.5);
  gm::EvalArgs e;
  e.target = dir;
  e.metrics = {"zeroshot"};
  const gm::Json zs = gm::run_eval(e).result.at("zeroshot");
  EXPECT_FALSE(zs.contains("zeroshot_accuracy_held_out"));
  EXPECT_EQ(zs.at("retrieval_n").get<int64_t>(), 96);
}
