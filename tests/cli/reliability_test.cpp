// Reliability end to end: a run killed with SIGKILL at random moments (checkpoint writes
// included) and resumed each time ends bit-identical to an uninterrupted one; a full disk
// leaves the previous checkpoint; kept checkpoints can be sampled; a NaN loss rolls back.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "cli/cli_util.h"
#include "genmodels/core/jsonl.h"
#include "genmodels/io/npy.h"
#include "genmodels/models/run.h"

namespace fs = std::filesystem;
using namespace gm::test::cli;

namespace {

const std::string kSmall =
    " --data moons --seed 2 --set train.batch_size=64 --set train.log_every=5";

torch::Tensor draw(const std::string& run, const std::string& extra = "") {
  Result s = cli("sample " + run + extra + " --n 64 --seed 1 --npy " + run + "/draw.npy --out " +
                 run + "/draw");
  EXPECT_EQ(s.status, 0) << s.err;
  return s.status == 0 ? gm::io::read_npy(run + "/draw.npy") : torch::Tensor();
}

std::vector<int64_t> logged_steps(const std::string& run) {
  std::vector<int64_t> steps;
  for (const auto& r : gm::read_jsonl(run + "/metrics.jsonl")) steps.push_back(r["step"]);
  return steps;
}

// Kills `train` 20 times at random moments (half of each run's time is spent inside checkpoint
// writes, slowed by GM_FAULT_SLOW_WRITE_MS), resuming with the same command each time; every
// checkpoint left behind must load, and the finished run must equal the uninterrupted one.
void kill_and_resume(const std::string& model, const std::string& args) {
  const std::string ref = fresh("kill_ref_" + model), run = fresh("kill_" + model);
  const std::string train = std::string(GM_CLI) + " train " + model + args;
  Result r = shell(train + " --out " + ref);
  ASSERT_EQ(r.status, 0) << r.err;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> wait_ms(100, 700);
  int kills = 0;
  for (int attempt = 0; attempt < 60 && kills < 20; ++attempt) {
    const bool resume = fs::exists(run + "/checkpoint.pt");
    const std::string cmd =
        "GM_FAULT_SLOW_WRITE_MS=30 exec " +
        (resume ? std::string(GM_CLI) + " train --resume --out " + run : train + " --out " + run) +
        " >/dev/null 2>&1";
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms(rng)));
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) break;  // finished before the kill
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    ++kills;
    if (fs::exists(run + "/checkpoint.pt")) {
      EXPECT_NO_THROW(gm::load_trained_model(run)) << "after kill " << kills;
    }
  }
  EXPECT_GE(kills, 10);
  Result done = shell(fs::exists(run + "/checkpoint.pt")
                          ? std::string(GM_CLI) + " train --resume --out " + run
                          : train + " --out " + run);  // (a loaded machine: no checkpoint yet)
  ASSERT_EQ(done.status, 0) << done.err;
  EXPECT_TRUE(torch::equal(draw(ref), draw(run))) << model << " after " << kills << " kills";
  auto a = gm::load_trained_model(ref), b = gm::load_trained_model(run);
  const auto pa = a->module().parameters(), pb = b->module().parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << i;
  // Replayed steps are logged once: the killed run's records are the uninterrupted run's.
  EXPECT_EQ(logged_steps(run), logged_steps(ref));
  for (const auto& e : fs::directory_iterator(run))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

}  // namespace

TEST(Reliability, KilledAtRandomMomentsOneOptimizer) {
  kill_and_resume("ddpm", kSmall +
                              " --steps 400 --set train.checkpoint_every=5 "
                              "--set model.mlp_hidden=32 --set diffusion.timesteps=50");
}

TEST(Reliability, KilledAtRandomMomentsTwoOptimizers) {
  kill_and_resume("dcgan", kSmall + " --steps 400 --set train.checkpoint_every=5");
}

// A write past the file-size limit (ulimit -f; a full disk answers the same way): one line,
// status 2, the previous checkpoint intact and no temp file; with space again the run resumes.
TEST(Reliability, FullDiskKeepsThePreviousCheckpoint) {
  const std::string run = fresh("fulldisk");
  const std::string toy = kSmall + " --set model.mlp_hidden=32 --set diffusion.timesteps=50";
  ASSERT_EQ(cli("train ddpm --steps 20 --stop-at 10 --out " + run + toy).status, 0);
  const auto size = fs::file_size(run + "/checkpoint.pt");
  // dash's ulimit -f counts 512-byte blocks: room for the metrics, not for a checkpoint.
  Result full = shell("ulimit -f " + std::to_string(size / 512 / 2) + "; " + GM_CLI +
                      " train --resume --out " + run);
  EXPECT_EQ(full.status, 2) << full.err;
  EXPECT_NE(full.err.find("cannot write " + run + "/checkpoint.pt"), std::string::npos) << full.err;
  EXPECT_NE(full.err.find("the previous file is intact"), std::string::npos) << full.err;
  EXPECT_EQ(fs::file_size(run + "/checkpoint.pt"), size);
  EXPECT_NO_THROW(gm::load_trained_model(run));
  for (const auto& e : fs::directory_iterator(run))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  Result again = cli("train --resume --out " + run);
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(logged_steps(run).back(), 20);
}

TEST(Reliability, KeptCheckpointsCanBeSampled) {
  const std::string run = fresh("keep");
  Result r = cli("train ddpm --steps 40 --out " + run + kSmall +
                 " --set model.mlp_hidden=32 --set diffusion.timesteps=50"
                 " --set train.checkpoint_every=10 --set train.keep_checkpoints=2");
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> kept;
  for (const auto& e : fs::directory_iterator(run + "/checkpoints"))
    kept.push_back(e.path().filename().string());
  std::sort(kept.begin(), kept.end());
  EXPECT_EQ(kept, (std::vector<std::string>{"step_0000030.pt", "step_0000040.pt"}));
  const torch::Tensor latest = draw(run), at30 = draw(run, " --checkpoint step_0000030");
  EXPECT_TRUE(torch::equal(draw(run, " --checkpoint 40"), latest));
  EXPECT_FALSE(torch::equal(at30, latest));
  expect_error("sample " + run + " --checkpoint 20", "kept: step_0000030, step_0000040");
}

// GM_FAULT_NAN_AT=STEP[xTIMES] makes a step's loss NaN (a test hook of the trainer).
TEST(Reliability, NanLossRollsBackOrStops) {
  const std::string toy = kSmall + " --set model.mlp_hidden=32 --set diffusion.timesteps=50" +
                          " --set train.checkpoint_every=10 --steps 30";
  const std::string stop = fresh("nan_stop"), back = fresh("nan_back"), give_up = fresh("nan_3");
  Result s = shell("GM_FAULT_NAN_AT=15 " + std::string(GM_CLI) + " train ddpm --out " + stop + toy);
  EXPECT_EQ(s.status, 2);
  EXPECT_NE(s.err.find("loss is nan at step 15"), std::string::npos) << s.err;

  Result b = shell("GM_FAULT_NAN_AT=15 " + std::string(GM_CLI) + " train ddpm --out " + back + toy +
                   " --set train.on_nan=rollback");
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_NE(b.err.find("rolled back to step 10"), std::string::npos) << b.err;
  EXPECT_NE(b.err.find("dropping the batch of step 15, LR x0.5"), std::string::npos) << b.err;
  const auto rows = gm::read_jsonl(back + "/metrics.jsonl");
  int rollbacks = 0;
  for (const auto& row : rows)
    if (row.contains("rollback_from")) {
      ++rollbacks;
      EXPECT_EQ(row["rollback_from"].get<int64_t>(), 15);
      EXPECT_EQ(row["lr_scale"].get<double>(), 0.5);
    }
  EXPECT_EQ(rollbacks, 1);
  EXPECT_EQ(rows.back()["step"].get<int64_t>(), 30);
  EXPECT_TRUE(torch::isfinite(draw(back)).all().item<bool>());

  Result g = shell("GM_FAULT_NAN_AT=15x9 " + std::string(GM_CLI) + " train ddpm --out " + give_up +
                   toy + " --set train.on_nan=rollback");
  EXPECT_EQ(g.status, 2);
  EXPECT_NE(g.err.find("3 rollbacks in a row"), std::string::npos) << g.err;
  EXPECT_NO_THROW(gm::load_trained_model(give_up));
}
