// Helpers of the end-to-end tests: run the genmodels program (GM_CLI) and capture its output.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace gm::test::cli {

struct Result {
  int status;
  std::string err, out;
};

// Runs a shell command line, capturing its stdout and stderr.
inline Result shell(const std::string& line) {
  const std::string dir =
      std::filesystem::temp_directory_path() / ("gm_cli_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string cmd = "{ " + line + "; } >" + dir + "/out 2>" + dir + "/err";
  const int rc = std::system(cmd.c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, slurp(dir + "/err"), slurp(dir + "/out")};
}

inline Result cli(const std::string& args) { return shell(std::string(GM_CLI) + " " + args); }

inline std::string fresh(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() /
           ("gm_cli_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  return d.string();
}

// Exit 2 with one "genmodels: error:" line containing `needle`.
inline void expect_error(const std::string& args, const std::string& needle) {
  Result r = cli(args);
  EXPECT_EQ(r.status, 2) << args << "\n" << r.err;
  EXPECT_NE(r.err.find("genmodels: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "wanted '" << needle << "' in: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace gm::test::cli
