// The run-directory layout has one owner (train/run_dir.h).
#include "genmodels/train/run_dir.h"

#include <gtest/gtest.h>

#include <fstream>

#include "genmodels/core/error.h"
#include "test_util.h"

TEST(RunDir, NamesEveryPathOfARun) {
  const gm::train::RunDir r("runs/x");
  EXPECT_EQ(r.config(), "runs/x/config.toml");
  EXPECT_EQ(r.checkpoint(), "runs/x/checkpoint.pt");
  EXPECT_EQ(r.metrics(), "runs/x/metrics.jsonl");
  EXPECT_EQ(r.preview(1234), "runs/x/samples/step_0001234.png");
  EXPECT_EQ(r.figure("density.png"), "runs/x/samples/density.png");
  EXPECT_EQ(r.eval_json(), "runs/x/eval.json");
  EXPECT_EQ(r.report_json(), "runs/x/report.json");
}

TEST(RunDir, OpensADirectoryOrACheckpointFile) {
  gm::test::TempDir tmp;
  const gm::train::RunDir r(tmp.file("run"));
  EXPECT_FALSE(gm::train::RunDir::is_run(r.path()));
  r.create();
  EXPECT_FALSE(r.has_checkpoint());
  std::ofstream(r.checkpoint()) << "x";
  EXPECT_TRUE(gm::train::RunDir::is_run(r.path()));
  EXPECT_EQ(gm::train::RunDir::open(r.path()).checkpoint(), r.checkpoint());
  // A checkpoint file given directly: the run is its folder, the checkpoint that file.
  const std::string other = tmp.file("run/other.pt");
  std::ofstream(other) << "y";
  const gm::train::RunDir o = gm::train::RunDir::open(other);
  EXPECT_EQ(o.checkpoint(), other);
  EXPECT_EQ(o.path(), r.path());
  const std::string msg = gm::test::error_of([&] { gm::train::RunDir::open(tmp.file("none")); });
  EXPECT_NE(msg.find(tmp.file("none")), std::string::npos) << msg;
  EXPECT_NE(msg.find("genmodels train"), std::string::npos) << msg;
}
