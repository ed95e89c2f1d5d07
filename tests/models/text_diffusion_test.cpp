// Text-to-image diffusion: a ddpm conditioned on a clip run's text features
// (model.text_encoder) learns to draw what the prompt names; prompts with words no caption ever
// held still encode and sample; a noise-conditional clip's gradient steers an unconditional ddpm
// (CLIP guidance); a resumed run is bit-identical; misuse is one line.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "genmodels/core/error.h"
#include "genmodels/data/dataset.h"
#include "genmodels/family/model.h"
#include "genmodels/models/run.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

std::string fresh_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("gm_t2i_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d.string();
}

// One small clip run shared by the tests (the clip learning test's recipe). ctest runs each test
// in its own process, so the run is trained once per ctest invocation: it is kept under the
// parent's pid (ctest's, the same for every test) and this binary's modification time (a rebuilt
// test never reuses an old run), marked finished by a `.done` file beside it, behind a file lock
// (ctest -j).
const std::string& clip_run() {
  static const std::string dir = [] {
    const auto built = fs::last_write_time("/proc/self/exe").time_since_epoch().count();
    const std::string d = (fs::temp_directory_path() /
                           ("gm_t2i_clip_of_" + std::to_string(::getppid()) + "_" +
                            std::to_string(built)))
                              .string(),
                      done = d + ".done";
    const int lock = ::open((d + ".lock").c_str(), O_CREAT | O_RDWR, 0600);
    if (lock < 0 || ::flock(lock, LOCK_EX) != 0) throw std::runtime_error("cannot lock " + d);
    if (!fs::exists(done)) {
      fs::remove_all(d);
      gm::TrainArgs a;
      a.model = "clip";
      a.data = "fashion-mnist";
      a.out = d;
      a.steps = 250;
      a.seed = 2;
      a.threads = 2;
      // 14x14 images as the diffusion runs below; half of each batch noised, so that the image
      // encoder can guide sampling.
      a.sets = {"data.limit=4000",      "data.image_size=14",    "model.noised_share=0.5",
                "model.patch=7",        "model.width=64",        "model.layers=2",
                "model.text_width=64",  "model.text_layers=2",   "model.embed_dim=32",
                "model.bpe_merges=120", "model.bpe_corpus=3000", "train.batch_size=128",
                "train.lr=1e-3",        "train.warmup_steps=20", "train.eval_every=0",
                "train.log_every=50",   "train.ema_decay=0.9"};
      gm::run_train(a);
      std::ofstream(done) << "trained\n";
    }
    ::close(lock);
    return d;
  }();
  return dir;
}

// A small ddpm on 14x14 Fashion-MNIST; `first` is its first setting (by default the shared
// clip run as its text encoder).
gm::TrainArgs text_ddpm_args(const std::string& out, int64_t steps, std::string first = "") {
  gm::TrainArgs a;
  a.model = "ddpm";
  a.data = "fashion-mnist";
  a.out = out;
  a.steps = steps;
  a.seed = 3;
  a.threads = 2;
  a.sets = {first.empty() ? "model.text_encoder=" + clip_run() : first,
            "data.limit=4000",
            "data.image_size=14",  // a quarter of the cost; the classes stay apart
            "model.base_channels=32",
            "model.channel_mult=1,2",
            "model.attention_levels=",
            "model.num_res_blocks=1",
            "train.batch_size=32",
            "train.lr=2e-3",
            "train.lr_schedule=constant",
            "train.ema_decay=0.99",
            "train.eval_every=0",
            "train.sample_every=0",
            "train.log_every=50"};
  return a;
}

gm::SampleArgs prompt_args(const std::string& run, const std::string& prompt, int64_t n) {
  gm::SampleArgs s;
  s.run = run;
  s.prompt = prompt;
  s.n = n;
  s.seed = 5;
  s.quiet = true;
  s.sets = {"sample.sampler=ddim", "sample.steps=20", "sample.guidance=3"};
  return s;
}

// The mean training image of class k, as the runs below see them (14x14).
torch::Tensor class_mean(int64_t k) {
  gm::data::DataOptions o;
  o.limit = 4000;
  o.image_size = 14;
  const gm::data::Dataset train = gm::data::load_dataset("fashion-mnist", o);
  return train.x.index({train.y.eq(k)}).mean(0);
}

// Mean squared distance between the mean of samples `x` and a class mean `m`.
double mean_distance(const torch::Tensor& x, const torch::Tensor& m) {
  return (x.mean(0) - m).square().mean().item<double>();
}

}  // namespace

TEST(TextDiffusion, PromptsSteerSamplesTowardTheNamedClass) {
  const std::string dir = fresh_dir("learn");
  gm::run_train(text_ddpm_args(dir, 200));
  // Trousers (1) and bags (8) differ most in shape, so a prompted sample set's mean image must
  // sit nearer its own class's mean.
  const torch::Tensor trouser = class_mean(1), bag = class_mean(8);
  const auto clip = gm::load_trained_model(clip_run());
  const gm::SampleResult t = gm::sample_run(prompt_args(dir, clip->class_prompt(1), 64));
  const gm::SampleResult b = gm::sample_run(prompt_args(dir, clip->class_prompt(8), 64));
  ASSERT_EQ(t.x.sizes(), torch::IntArrayRef({64, 1, 14, 14}));
  EXPECT_FALSE(t.labels.defined());
  EXPECT_EQ(t.params.at("prompt"), clip->class_prompt(1));
  EXPECT_EQ(t.params.at("guidance"), "3");
  std::cout << "  trouser prompt: " << mean_distance(t.x, trouser) << " to trousers, "
            << mean_distance(t.x, bag) << " to bags; bag prompt: " << mean_distance(b.x, bag)
            << " to bags, " << mean_distance(b.x, trouser) << " to trousers\n";
  EXPECT_LT(mean_distance(t.x, trouser), 0.5 * mean_distance(t.x, bag))
      << mean_distance(t.x, trouser) << " vs " << mean_distance(t.x, bag);
  EXPECT_LT(mean_distance(b.x, bag), 0.5 * mean_distance(b.x, trouser))
      << mean_distance(b.x, bag) << " vs " << mean_distance(b.x, trouser);

  // Without --prompt a text-conditional run draws each class's prompt in turn (labels kept).
  gm::SampleArgs by_class = prompt_args(dir, "", 20);
  const gm::SampleResult c = gm::sample_run(by_class);
  ASSERT_TRUE(c.labels.defined());
  EXPECT_EQ(c.labels[11].item<int64_t>(), 1);

  // Words no caption held, and bytes no caption held, still encode and sample.
  const gm::SampleResult u =
      gm::sample_run(prompt_args(dir, "a zorblaxian quuxified \xe2\x9c\x93 garment", 4));
  EXPECT_EQ(u.x.sizes(), torch::IntArrayRef({4, 1, 14, 14}));
  EXPECT_TRUE(torch::isfinite(u.x).all().item<bool>());

  // Misuse is one line naming what to change.
  gm::SampleArgs both = prompt_args(dir, "a bag", 2);
  both.class_label = 8;
  EXPECT_NE(gm::test::error_of([&] { gm::sample_run(both); }).find("--prompt and --class"),
            std::string::npos);
}

TEST(TextDiffusion, ClipGuidanceSteersAnUnconditionalModel) {
  // An unconditional ddpm and the noise-conditional clip run's gradient (sample --clip).
  const std::string dir = fresh_dir("uncond");
  gm::TrainArgs a = text_ddpm_args(dir, 200, "model.conditional=false");
  gm::run_train(a);
  const torch::Tensor trouser = class_mean(1), bag = class_mean(8);
  const auto clip = gm::load_trained_model(clip_run());
  auto guided = [&](int64_t k, double scale) {
    gm::SampleArgs s = prompt_args(dir, clip->class_prompt(k), 64);
    s.sets = {"sample.sampler=ddim", "sample.steps=20"};
    s.clip = clip_run();
    s.clip_guidance = scale;
    return gm::sample_run(s);
  };
  // Scale 0 is the unguided model, whatever the prompt; at the default scale (3) each prompt's
  // samples sit nearer its class. (Measured after 200 steps: 0.065 / 0.195 and 0.063 / 0.264; scale
  // 30 overshoots.)
  EXPECT_TRUE(torch::equal(guided(1, 0.0).x, guided(8, 0.0).x));
  const gm::SampleResult t = guided(1, 3.0), b = guided(8, 3.0);
  std::cout << "  clip guidance 3: trouser prompt " << mean_distance(t.x, trouser) << " / "
            << mean_distance(t.x, bag) << ", bag prompt " << mean_distance(b.x, bag) << " / "
            << mean_distance(b.x, trouser) << "\n";
  EXPECT_LT(mean_distance(t.x, trouser), 0.5 * mean_distance(t.x, bag));
  EXPECT_LT(mean_distance(b.x, bag), 0.5 * mean_distance(b.x, trouser));
  EXPECT_EQ(t.params.at("clip_guidance"), "3");
  EXPECT_EQ(t.params.at("prompt"), clip->class_prompt(1));
  // Guidance needs a prompt, and steers only diffusion and score models.
  gm::SampleArgs no_prompt = prompt_args(dir, "", 2);
  no_prompt.clip = clip_run();
  EXPECT_NE(gm::test::error_of([&] { gm::sample_run(no_prompt); }).find("--prompt"),
            std::string::npos);
  gm::SampleArgs not_diffusion = prompt_args(clip_run(), "a bag", 2);
  not_diffusion.clip = clip_run();
  not_diffusion.sets.clear();
  EXPECT_NE(gm::test::error_of([&] { gm::sample_run(not_diffusion); }).find("CLIP guidance"),
            std::string::npos);
}

TEST(TextDiffusion, ResumeIsBitIdentical) {
  const std::string straight = fresh_dir("straight"), split = fresh_dir("split");
  gm::run_train(text_ddpm_args(straight, 12));
  gm::TrainArgs first = text_ddpm_args(split, 12);
  first.stop_at = 5;
  gm::run_train(first);
  gm::TrainArgs rest = text_ddpm_args(split, 12);
  rest.resume = true;
  rest.data.reset();
  gm::run_train(rest);
  EXPECT_GT(gm::test::expect_same_checkpoint_tensors(straight + "/checkpoint.pt",
                                                     split + "/checkpoint.pt"),
            20);
}

TEST(TextDiffusion, BadInputIsOneLine) {
  const std::string dir = fresh_dir("bad");
  gm::TrainArgs missing = text_ddpm_args(dir, 1, "model.text_encoder=" + dir + "/no-such-run");
  const std::string e1 = gm::test::error_of([&] { gm::run_train(missing); });
  EXPECT_NE(e1.find("model.text_encoder"), std::string::npos) << e1;
  EXPECT_EQ(e1.find('\n'), std::string::npos) << e1;
  // A run that is not a clip run.
  const std::string plain = fresh_dir("plain");
  gm::TrainArgs p = text_ddpm_args(plain, 1, "model.conditional=true");
  gm::run_train(p);
  gm::TrainArgs not_clip = text_ddpm_args(dir, 1, "model.text_encoder=" + plain);
  const std::string e2 = gm::test::error_of([&] { gm::run_train(not_clip); });
  EXPECT_NE(e2.find("is not a clip run"), std::string::npos) << e2;
  // --prompt to a run that is not text-conditional.
  const std::string e3 =
      gm::test::error_of([&] { gm::sample_run(prompt_args(plain, "a bag", 2)); });
  EXPECT_NE(e3.find("not text-conditional"), std::string::npos) << e3;
}
