// The progress bar: silent for short jobs when asked to be, silenced by --quiet, and otherwise a
// line with the count, the rate and the ETA (stderr is not a terminal under the test runner).
#include "genmodels/core/progress.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

TEST(Progress, ShortJobsWithADelayStaySilentLongOnesReportRateAndEta) {
  testing::internal::CaptureStderr();
  {
    gm::Progress quick(10, 0, "quick", 10.0, /*delay_s=*/1.0);
    for (int i = 1; i <= 10; ++i) quick.update(i, "");
    quick.finish("done");
  }
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");

  testing::internal::CaptureStderr();
  {
    gm::Progress slow(4, 0, "slow", 10.0, /*delay_s=*/0.05);
    slow.update(1, "");
    std::this_thread::sleep_for(std::chrono::milliseconds(80));
    slow.update(4, "rows");  // the last step always draws once the delay has passed
    slow.finish("done");
  }
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("slow 4/4"), std::string::npos) << out;
  EXPECT_NE(out.find("it/s  rows  ETA"), std::string::npos) << out;
  EXPECT_NE(out.find("slow done"), std::string::npos) << out;

  gm::Progress::set_quiet(true);
  testing::internal::CaptureStderr();
  {
    gm::Progress muted(2, 0, "muted");
    muted.update(2, "");
    muted.finish("done");
  }
  gm::Progress::set_quiet(false);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}
