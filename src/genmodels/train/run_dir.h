// The layout of a run directory, owned by one type: every path of a run is named here and
// nowhere else.
//   config.toml      the resolved configuration (what `genmodels config` prints, with values)
//   checkpoint.pt    the latest full state (weights, EMAs, optimizers, step, RNG, data order, meta)
//   checkpoints/     step_NNNNNNN.pt: the last train.keep_checkpoints states (hard links)
//   metrics.jsonl    one record per logging interval
//   samples/         preview grids (step_NNNNNNN.png), the final grid, model figures
//   eval.json        the last `genmodels eval` result
//   report.json      closed-form fit report (accuracy, bits/dim, times)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "genmodels/core/json.h"

namespace gm::train {

class RunDir {
 public:
  /// A run directory (need not exist yet).
  explicit RunDir(std::string path);
  /// A run directory or a checkpoint file inside one, as given on the command line; errors name
  /// the path and say how to fix it.
  static RunDir open(const std::string& run_or_checkpoint);
  /// True when `path` is a directory holding a checkpoint.
  static bool is_run(const std::string& path);

  const std::string& path() const { return path_; }
  std::string config() const { return path_ + "/config.toml"; }
  const std::string& checkpoint() const { return checkpoint_; }
  std::string metrics() const { return path_ + "/metrics.jsonl"; }
  std::string samples() const { return path_ + "/samples"; }
  /// samples/step_NNNNNNN.png
  std::string preview(int64_t step) const;
  /// samples/NAME (model figures, the final grid)
  std::string figure(const std::string& name) const { return samples() + "/" + name; }
  std::string eval_json() const { return path_ + "/eval.json"; }
  std::string report_json() const { return path_ + "/report.json"; }

  std::string checkpoints() const { return path_ + "/checkpoints"; }
  /// checkpoints/step_NNNNNNN.pt
  std::string checkpoint_at(int64_t step) const;
  /// The kept checkpoints, oldest first.
  std::vector<std::string> history() const;
  /// This run with `which` as its checkpoint: a kept one by name ("step_0001000", with or without
  /// .pt) or by step number ("1000"); the error lists the kept ones.
  RunDir at_checkpoint(const std::string& which) const;
  /// Keeps the newest `keep` of the kept checkpoints after adding a link to `checkpoint()` as the
  /// state of `step` (a copy where the filesystem has no hard links).
  void keep_checkpoint(int64_t step, int64_t keep) const;
  /// Removes temp files a killed writer left (NAME.tmp.PID) in the run and checkpoints/.
  void remove_stale_temp_files() const;

  bool has_checkpoint() const;
  /// Creates the directory and samples/.
  void create() const;
  /// The metadata stored in the checkpoint (model, config_toml, data, format).
  Json read_meta() const;

 private:
  std::string path_, checkpoint_;
};

}  // namespace gm::train
