// Helpers shared by the test programs.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "genmodels/core/error.h"

namespace gm::test {

/// A fresh directory under the system temp dir, named after the running test, removed at scope end.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "gm") {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = std::filesystem::temp_directory_path() /
           (prefix + "_" + std::to_string(::getpid()) + "_" +
            (info ? std::string(info->test_suite_name()) + "_" + info->name() : "x"));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

/// The message of the gm::Error `f` throws, or "<no gm::Error>".
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const gm::Error& e) {
    return e.what();
  }
  return "<no gm::Error>";
}

}  // namespace gm::test
