#include "genmodels/train/run_dir.h"

#include <cstdio>
#include <filesystem>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/train/checkpoint.h"

namespace gm::train {
namespace fs = std::filesystem;

RunDir::RunDir(std::string path) : path_(std::move(path)), checkpoint_(path_ + "/checkpoint.pt") {}

RunDir RunDir::open(const std::string& run) {
  if (fs::is_directory(run)) return RunDir(run);
  if (fs::exists(run)) {
    const fs::path p(run);
    RunDir r(p.has_parent_path() ? p.parent_path().string() : ".");
    r.checkpoint_ = run;
    return r;
  }
  throw Error("run '" + run + "' does not exist (give a run directory made by `genmodels train`)");
}

bool RunDir::is_run(const std::string& path) {
  return fs::is_directory(path) && fs::exists(RunDir(path).checkpoint());
}

std::string RunDir::preview(int64_t step) const {
  char name[64];
  std::snprintf(name, sizeof name, "step_%07lld.png", static_cast<long long>(step));
  return figure(name);
}

bool RunDir::has_checkpoint() const { return fs::exists(checkpoint_); }

void RunDir::create() const { make_dirs(samples()); }

Json RunDir::read_meta() const { return read_checkpoint_meta(checkpoint_); }

}  // namespace gm::train
