#include "genmodels/train/run_dir.h"

#include <algorithm>
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
    fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    if (dir.filename() == "checkpoints" && dir.has_parent_path() &&
        fs::exists(dir.parent_path() / "config.toml"))
      dir = dir.parent_path();  // a kept checkpoint: its run is the directory above
    RunDir r(dir.string());
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

std::string RunDir::checkpoint_at(int64_t step) const {
  char name[64];
  std::snprintf(name, sizeof name, "/step_%07lld.pt", static_cast<long long>(step));
  return checkpoints() + name;
}

std::vector<std::string> RunDir::history() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(checkpoints(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) == 0 && e.path().extension() == ".pt") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());  // zero-padded steps: by name is by step
  return out;
}

RunDir RunDir::at_checkpoint(const std::string& which) const {
  std::string name = which;
  if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos)
    name = fs::path(checkpoint_at(std::stoll(name))).filename().string();
  if (fs::path(name).extension() != ".pt") name += ".pt";
  RunDir r(*this);
  r.checkpoint_ = checkpoints() + "/" + name;
  if (fs::exists(r.checkpoint_)) return r;
  std::string kept;
  for (const auto& h : history()) kept += (kept.empty() ? "" : ", ") + fs::path(h).stem().string();
  throw Error("--checkpoint " + which + ": " + path_ + " keeps no such checkpoint (" +
              (kept.empty() ? "it keeps none: train with --set train.keep_checkpoints=K"
                            : "kept: " + kept) +
              ")");
}

void RunDir::keep_checkpoint(int64_t step, int64_t keep) const {
  if (keep <= 0) return;
  make_dirs(checkpoints());
  const std::string dst = checkpoint_at(step);
  std::error_code ec;
  fs::remove(dst, ec);
  fs::create_hard_link(checkpoint_, dst, ec);
  if (ec) write_file_atomic(dst, read_file(checkpoint_));
  auto kept = history();
  for (size_t i = 0; i + static_cast<size_t>(keep) < kept.size(); ++i) fs::remove(kept[i], ec);
}

void RunDir::remove_stale_temp_files() const {
  for (const std::string& dir : {path_, checkpoints()}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().filename().string().find(".tmp.") != std::string::npos) fs::remove(e.path(), ec);
  }
}

bool RunDir::has_checkpoint() const { return fs::exists(checkpoint_); }

void RunDir::create() const { make_dirs(samples()); }

Json RunDir::read_meta() const { return read_checkpoint_meta(checkpoint_); }

}  // namespace gm::train
