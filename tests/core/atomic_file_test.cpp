// Atomic writes: a write that fails midway leaves the previous file intact and no temp file.
#include "genmodels/core/atomic_file.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "genmodels/core/error.h"
#include "genmodels/core/jsonl.h"

namespace fs = std::filesystem;

namespace {
std::string temp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("gm_core_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}
}  // namespace

TEST(AtomicFile, WriteAndReplace) {
  const std::string dir = temp_dir("write");
  gm::write_file_atomic(dir + "/a.txt", std::string("first"));
  EXPECT_EQ(gm::read_file(dir + "/a.txt"), "first");
  gm::write_file_atomic(dir + "/a.txt", std::string("second"));
  EXPECT_EQ(gm::read_file(dir + "/a.txt"), "second");
}

TEST(AtomicFile, CrashMidWriteKeepsPreviousFile) {
  const std::string dir = temp_dir("crash");
  gm::write_file_atomic(dir + "/ckpt", std::string("good"));
  EXPECT_THROW(gm::write_file_atomic(dir + "/ckpt",
                                     [](std::ostream& out) {
                                       out << "half-writ";
                                       throw std::runtime_error("simulated crash");
                                     }),
               std::runtime_error);
  EXPECT_EQ(gm::read_file(dir + "/ckpt"), "good");
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1) << "temp file left behind";
}

TEST(AtomicFile, UnwritableDirectoryNamesPath) {
  try {
    gm::write_file_atomic("/nonexistent-dir/x.bin", std::string("x"));
    FAIL();
  } catch (const gm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.bin"), std::string::npos);
  }
}

TEST(Jsonl, AppendAndRead) {
  const std::string dir = temp_dir("jsonl");
  {
    gm::JsonlWriter w(dir + "/m.jsonl", false);
    w.write({{"step", 1}, {"loss", 0.5}});
  }
  {
    gm::JsonlWriter w(dir + "/m.jsonl", true);
    w.write({{"step", 2}, {"loss", 0.25}});
  }
  auto rows = gm::read_jsonl(dir + "/m.jsonl");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["step"], 2);
  EXPECT_DOUBLE_EQ(rows[1]["loss"].get<double>(), 0.25);
}
