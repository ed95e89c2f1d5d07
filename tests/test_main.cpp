// The test programs' main: GoogleTest's, plus exit code 77 when every test that ran was skipped
// (GTEST_SKIP, e.g. a Python twin without python3-torch) and none failed, so that ctest, which runs
// one test suite per process (cmake/GmTestSuites.cmake), reports such a suite as skipped instead of
// passed.
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  const auto& unit = *::testing::UnitTest::GetInstance();
  if (rc == 0 && unit.successful_test_count() == 0 && unit.skipped_test_count() > 0) return 77;
  return rc;
}
