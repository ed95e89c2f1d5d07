// The genmodels program end to end: bad input gives one line on stderr and exit status 2;
// a toy run writes config, metrics, checkpoint and PNGs that carry their generation parameters.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/cli_util.h"
#include "genmodels/core/atomic_file.h"
#include "genmodels/core/json.h"
#include "genmodels/core/jsonl.h"
#include "genmodels/io/image.h"
#include "genmodels/io/npy.h"
#include "genmodels/nn/precision.h"

namespace fs = std::filesystem;
using namespace gm::test::cli;

TEST(Cli, ListShowsRegistries) {
  Result r = cli("list");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* s : {"ddpm", "ddim", "cosine", "linear", "fashion-mnist", "8gaussians"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
}

TEST(Cli, BadInputIsOneLineError) {
  expect_error("train nosuchmodel --steps 1", "registered models: ddpm");
  expect_error("train ddpm --data moons --steps 1 --set train.lrr=1", "valid keys:");
  expect_error("train ddpm --data moons --steps 1 --set train.lr=fast", "expected a number");
  expect_error("train ddpm --data nosuchdata --steps 1", "nosuchdata");
  expect_error("train ddpm --data folder:/nonexistent/dir --steps 1", "/nonexistent/dir");
  expect_error("train ddpm --data moons", "--steps N or --minutes M");
  expect_error("train --resume --out /nonexistent/run", "/nonexistent/run");
  expect_error("sample /nonexistent/run", "/nonexistent/run");

  const std::string bad = fresh("badidx");
  fs::create_directories(bad);
  std::ofstream(bad + "/train-images-idx3-ubyte") << "not an idx file at all";
  std::ofstream(bad + "/train-labels-idx1-ubyte") << "nope";
  expect_error("train ddpm --data mnist-idx:" + bad + " --steps 1", "train-");
}

TEST(Cli, ToyRunWritesEverything) {
  const std::string run = fresh("toy");
  Result t =
      shell(std::string(GM_CLI) + " train ddpm --data moons --steps 30 --seed 1 --out " + run +
            " --set train.log_every=10 --set model.mlp_hidden=32 --set diffusion.timesteps=50");
  ASSERT_EQ(t.status, 0) << t.err;
  EXPECT_TRUE(fs::exists(run + "/config.toml"));
  EXPECT_TRUE(fs::exists(run + "/checkpoint.pt"));
  auto rows = gm::read_jsonl(run + "/metrics.jsonl");
  ASSERT_EQ(rows.size(), 3u);
  for (const char* k : {"step", "loss", "lr", "img_per_s", "wall_time"})
    EXPECT_TRUE(rows[0].contains(k)) << k;
  EXPECT_FALSE(fs::is_empty(run + "/samples"));

  Result s = cli("sample " + run + " --sampler ddim --steps 10 --n 200 --seed 4 --npy " + run +
                 "/pts.npy --out " + run + "/out");
  ASSERT_EQ(s.status, 0) << s.err;
  auto text = gm::io::read_png_text(run + "/out/grid.png");
  EXPECT_EQ(text["model"], "ddpm");
  EXPECT_EQ(text["sampler"], "ddim");
  EXPECT_EQ(text["steps"], "10");
  EXPECT_EQ(text["seed"], "4");
  torch::Tensor pts = gm::io::read_npy(run + "/pts.npy");
  EXPECT_EQ(pts.sizes(), (std::vector<int64_t>{200, 2}));
  EXPECT_TRUE(torch::isfinite(pts).all().item<bool>());

  // bf16 autocast sampling of an fp32 run: same shape, finite, close to the fp32 samples.
  Result b = cli("sample " + run + " --steps 10 --n 200 --seed 4 --precision bf16 --npy " + run +
                 "/pts16.npy --out " + run + "/out16");
  ASSERT_EQ(b.status, 0) << b.err;
  torch::Tensor pts16 = gm::io::read_npy(run + "/pts16.npy");
  EXPECT_TRUE(torch::isfinite(pts16).all().item<bool>());
  EXPECT_LT((pts16 - pts).abs().mean().item<double>(), 0.1);
  // auto: bf16 where the CPU has native bf16, fp32 elsewhere; the PNG and its command record the
  // resolved value, so `sample --from` repeats it on any machine.
  Result a = cli("sample " + run + " --steps 10 --n 200 --seed 4 --precision auto --npy " + run +
                 "/ptsauto.npy --out " + run + "/outauto");
  ASSERT_EQ(a.status, 0) << a.err;
  const std::string resolved = gm::nn::cpu_has_native_bf16() ? "bf16" : "fp32";
  auto auto_text = gm::io::read_png_text(run + "/outauto/grid.png");
  EXPECT_EQ(auto_text["precision"], resolved);
  EXPECT_NE(auto_text["parameters"].find("model.precision=" + resolved), std::string::npos)
      << auto_text["parameters"];
  EXPECT_TRUE(
      torch::equal(gm::io::read_npy(run + "/ptsauto.npy"), resolved == "bf16" ? pts16 : pts));
  Result bad = cli("sample " + run + " --precision fp16");
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("fp32, bf16"), std::string::npos) << bad.err;

  // eval of a toy run: sliced Wasserstein and MMD against the toy's test draws.
  Result e = cli("eval " + run + " --n 500 --steps 10");
  ASSERT_EQ(e.status, 0) << e.err;
  EXPECT_NE(e.out.find("swd"), std::string::npos) << e.out;
  auto j = gm::Json::parse(gm::read_file(run + "/eval.json"));
  EXPECT_GT(j["metrics"]["swd"]["value"].get<double>(), 0.0);
  EXPECT_TRUE(std::isfinite(j["metrics"]["mmd_rbf"]["value"].get<double>()));
}

TEST(Cli, SigintSavesCheckpointAndResumes) {
  const std::string run = fresh("sigint");
  // SIGINT after 3 s of a run that would take minutes: it must save, say so, and exit 0.
  Result t = shell(std::string(GM_CLI) + " train ddpm --data moons --steps 1000000 --out " + run +
                   " --set train.checkpoint_every=0 --set model.mlp_hidden=32 & pid=$!; sleep 4; "
                   "kill -INT $pid; wait $pid");
  ASSERT_EQ(t.status, 0) << t.err;
  EXPECT_NE(t.err.find("continue with --resume"), std::string::npos) << t.err;
  auto rows = gm::read_jsonl(run + "/metrics.jsonl");
  ASSERT_TRUE(fs::exists(run + "/checkpoint.pt"));
  // The checkpoint holds the interrupted step; resuming continues from it to a new budget.
  Result r = cli("train --resume --out " + run + " --steps 1");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("resumed at step"), std::string::npos) << r.err;
}

TEST(Cli, ClassicFitSampleAndErrors) {
  const std::string run = fresh("bnb");
  Result t = cli("train bnb --data fashion-mnist --out " + run);
  ASSERT_EQ(t.status, 0) << t.err;
  for (const char* key :
       {"test_accuracy", "test_bits_per_binary_dim", "fit_seconds", "predict_seconds"})
    EXPECT_NE(t.out.find(key), std::string::npos) << key << " in: " << t.out;
  EXPECT_TRUE(fs::exists(run + "/report.json"));
  const std::string out = fresh("bnb_samples");
  Result s = cli("sample " + run + " --class 7 --n 8 --out " + out + " --npy " + out + "/s.npy");
  ASSERT_EQ(s.status, 0) << s.err;
  EXPECT_TRUE(fs::exists(out + "/grid.png"));
  torch::Tensor labels = gm::io::read_npy(out + "/s.labels.npy");
  EXPECT_TRUE(torch::equal(labels, torch::full({8}, 7, torch::kInt64)));

  const std::string none = fresh("classic_none");
  expect_error("train lda --data moons --out " + none, "needs labelled data");
  expect_error("train lda --data fashion-mnist --set model.shrinkage=lots --out " + none,
               "model.shrinkage");
  expect_error("train gnb --data fashion-mnist --set model.priors=0.5,0.5 --out " + none,
               "2 values for 10");
  expect_error(
      "train lda --data fashion-mnist --set model.shrinkage=none "
      "--set model.dequantize=false --set data.limit=2000 --out " +
          none,
      "singular");
  expect_error("train lda --data fashion-mnist --set data.limit=5 --out " + none,
               "has no training examples");
  EXPECT_FALSE(fs::exists(none));  // a failed fit leaves no run directory
  expect_error("sample " + run + " --class 12", "--class 12");
}

TEST(Cli, ParseErrorsAreOneLineWithStatus2) {
  expect_error("train ddpm --bogus", "--bogus");
  expect_error("sample", "give a RUN directory");
  expect_error("train ddpm --data moons --steps many", "--steps");
  expect_error("sample /tmp --n", "--n");
  expect_error("frobnicate", "frobnicate");
  expect_error("config nosuchmodel", "registered models: ddpm");
}

TEST(Cli, HelpShowsDefaultsAndChoicesAndHidesTestFlags) {
  Result t = cli("train --help");
  ASSERT_EQ(t.status, 0) << t.err;
  EXPECT_EQ(t.out.find("--stop-at"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("--resume"), std::string::npos) << t.out;
  Result s = cli("sample --help");
  ASSERT_EQ(s.status, 0) << s.err;
  EXPECT_NE(s.out.find("{ddpm, ddim, euler, heun, euler_a, lms, dpm++2m, dpm++2m_sde, dpm++2s_a, "
                       "unipc, pc, langevin, ode}"),
            std::string::npos)
      << s.out;  // from the sampler table
  EXPECT_NE(s.out.find("{discrete, karras, exponential}"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("{linspace, leading, trailing}"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("--n INT=64"), std::string::npos) << s.out;      // --n's default
  EXPECT_NE(s.out.find("[sample.steps]"), std::string::npos) << s.out;  // the key a flag sets
}

TEST(Cli, ConfigPrintsCommentedDefaultsThatTrainBack) {
  Result c = cli("config ddpm");
  ASSERT_EQ(c.status, 0) << c.err;
  // One comment line above each key; the model's own defaults (ddpm: lr 1e-3) are in place.
  EXPECT_NE(c.out.find("# peak learning rate\nlr = 0.001\n"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("unipc, pc, langevin, ode)\nsampler = 'ddim'"), std::string::npos) << c.out;
  const std::string dir = fresh("config");
  fs::create_directories(dir);
  gm::write_file_atomic(dir + "/ddpm.toml", c.out);
  // Fed back with --config (plus a toy data set and budget) it trains, and the resolved
  // config.toml equals a run's without --config.
  const std::string common = " --data moons --steps 2 --set model.mlp_hidden=16 --out ";
  ASSERT_EQ(cli("train ddpm --config " + dir + "/ddpm.toml" + common + dir + "/a").status, 0);
  ASSERT_EQ(cli("train ddpm" + common + dir + "/b").status, 0);
  EXPECT_EQ(gm::read_file(dir + "/a/config.toml"), gm::read_file(dir + "/b/config.toml"));
}

TEST(Cli, SampleKeysAreStoredInTheRunAndOverridable) {
  const std::string run = fresh("samplekeys");
  // The run's stored sample.* keys are the sampling defaults (sample.eta used to be ignored).
  ASSERT_EQ(cli("train ddpm --data moons --steps 20 --seed 1 --out " + run +
                " --set model.mlp_hidden=32 --set diffusion.timesteps=50 --set sample.eta=1" +
                " --set sample.steps=8")
                .status,
            0);
  auto sample = [&](const std::string& name, const std::string& extra) {
    Result s = cli("sample " + run + " --n 300 --seed 4 --npy " + run + "/" + name + ".npy --out " +
                   run + "/" + name + extra);
    EXPECT_EQ(s.status, 0) << s.err;
    return std::make_pair(gm::io::read_npy(run + "/" + name + ".npy"),
                          gm::io::read_png_text(run + "/" + name + "/grid.png"));
  };
  auto [stored, stored_text] = sample("stored", "");
  EXPECT_EQ(stored_text["eta"], "1");
  EXPECT_EQ(stored_text["steps"], "8");
  auto [flag, flag_text] = sample("flag", " --eta 0");
  auto [set, set_text] = sample("set", " --set sample.eta=0");
  EXPECT_EQ(flag_text["eta"], "0");
  EXPECT_TRUE(torch::equal(flag, set));  // a flag is another name for its key
  // Flags and --set together: neither replaces the other.
  auto [both, both_text] =
      sample("both", " --sampler dpm++2m --steps 6 --set sample.schedule=exponential");
  EXPECT_EQ(both_text["sampler"], "dpm++2m");
  EXPECT_EQ(both_text["schedule"], "exponential");
  EXPECT_EQ(both_text["nfe"], "6");
  EXPECT_FALSE(torch::equal(flag, stored));
  auto [again, again_text] = sample("again", "");
  EXPECT_TRUE(torch::equal(again, stored));  // seeded

  expect_error("sample " + run + " --set train.lr=1", "only sample.* keys");
  expect_error("sample " + run + " --temperature 0.7", "sample.temperature");
  expect_error("sample " + run + " --sampler euler_z", "ddpm, ddim");
}

// Paths that cannot work (a directory for a file, a file for a directory, a missing parent, a
// file that is no checkpoint): one line, status 2, before any work, and nothing overwritten.
TEST(Cli, BadPathsAreOneLineErrorsAndNothingIsOverwritten) {
  const std::string run = fresh("badpaths_run"), dir = fresh("badpaths_dir");
  fs::create_directories(dir);
  const std::string file = dir + "/keep.txt";
  std::ofstream(file) << "keep";
  ASSERT_EQ(cli("train ddpm --data moons --steps 2 --set model.mlp_hidden=8 --out " + run).status,
            0);
  expect_error("train ddpm --config " + dir + " --steps 1", "is actually a directory");
  expect_error("train ddpm --data moons --steps 1 --out " + file, "is a file, not a directory");
  expect_error("train ddpm --data moons --steps 1 --out " + file + "/sub",
               "is a file, so the directory cannot be made");
  expect_error("sample " + run + " --n 2 --npy " + dir, "--npy " + dir + " is a directory");
  expect_error("sample " + run + " --n 2 --npy " + dir + "/missing/x.npy",
               "does not exist (create it first)");
  expect_error("sample " + run + " --n 2 --out " + file, "is a file, not a directory");
  expect_error("eval " + run + " --n 10 --json " + dir, "--json " + dir + " is a directory");
  expect_error("sample " + file, "is not a readable genmodels checkpoint");
  expect_error("info " + dir, dir + " is a directory");
  expect_error("import " + dir + " --out " + dir + "/imported", dir + " is a directory");
  expect_error("report " + run + " --out " + dir, "is a directory");
  expect_error("export " + run + " --format safetensors --out " + file, "is a file");
  expect_error("train ddpm --data folder:" + file + " --steps 1", file);
  EXPECT_EQ(gm::read_file(file), "keep");
}

// Permissions (an unreadable config, checkpoint or image folder; a read-only run directory or
// output folder): one line naming the path, status 2, before any work, nothing overwritten. Root
// reads and writes through permissions, so as root the commands run as the user nobody.
TEST(Cli, PermissionDeniedIsOneLineErrorAndNothingIsOverwritten) {
  std::string as_user;
  if (::geteuid() == 0) {
    if (shell("command -v setpriv").status != 0) {
      GTEST_SKIP() << "root without setpriv";
    }
    as_user = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
  }
  const std::string dir = fresh("perms");
  const std::string run = dir + "/run", ro = dir + "/readonly", cfg = dir + "/config.toml",
                    imgs = dir + "/images";
  ASSERT_EQ(cli("train ddpm --data moons --steps 2 --set model.mlp_hidden=8 --out " + run).status,
            0);
  fs::create_directories(ro);
  fs::create_directories(imgs);
  std::ofstream(cfg) << "[train]\nlr = 0.001\n";
  if (!as_user.empty()) {
    ASSERT_EQ(shell("chown -R 65534:65534 " + dir).status, 0);
  }
  auto expect = [&](const std::string& args, const std::string& needle) {
    Result r = shell(as_user + GM_CLI + " " + args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "wanted '" << needle << "' in: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\n" << r.err;
    EXPECT_EQ(r.err.find("sample "), std::string::npos) << "worked before failing: " << r.err;
  };
  const std::string before = gm::read_file(run + "/checkpoint.pt");
  fs::permissions(cfg, fs::perms::none);
  fs::permissions(imgs, fs::perms::none);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
  expect("train ddpm --config " + cfg + " --steps 1 --out " + dir + "/new", cfg);
  expect("train ddpm --data folder:" + imgs + " --steps 1 --out " + dir + "/new2",
         "cannot list the folder " + imgs);
  expect("sample " + run + " --n 2 --npy " + ro + "/x.npy", ro + " is not writable");
  expect("sample " + run + " --n 2 --out " + ro + "/grid", ro + " is not writable");
  expect("eval " + run + " --n 10 --json " + ro + "/eval.json", ro + " is not writable");
  expect("train ddpm --data moons --steps 1 --out " + ro + "/run", ro + " is not writable");
  fs::permissions(run, fs::perms::owner_read | fs::perms::owner_exec);  // a read-only run
  expect("train --resume --steps 4 --out " + run, "is not writable");
  expect("eval " + run + " --n 10", "is not writable");
  fs::permissions(run, fs::perms::owner_all);
  fs::permissions(run + "/checkpoint.pt", fs::perms::none);
  expect("sample " + run + " --n 2 --npy " + dir + "/x.npy", run + "/checkpoint.pt");
  fs::permissions(run + "/checkpoint.pt", fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(gm::read_file(run + "/checkpoint.pt"), before);
  EXPECT_FALSE(fs::exists(dir + "/new") || fs::exists(dir + "/new2") || fs::exists(dir + "/x.npy"));
  EXPECT_TRUE(fs::is_empty(ro));
  fs::permissions(imgs, fs::perms::owner_all);
  fs::permissions(ro, fs::perms::owner_all);
}
