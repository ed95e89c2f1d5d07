// Checkpoint files: one LibTorch archive with sections "model", "ema/<name>",
// "optimizer/<name>", the step, elapsed time, RNG and data state, and "meta" (JSON: model name,
// resolved config, data description). Written atomically (temp file, fsync, rename).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "genmodels/core/json.h"
#include "genmodels/train/step.h"

namespace gm::train {

/// Format 2: optimizers and EMAs stored by name.
constexpr int kCheckpointFormat = 2;

/// Writes `archive` to `path` atomically. LibTorch's archive writer must never see a failed
/// write (it throws from its destructor, which aborts the program), so it writes through a sink
/// that always accepts and the stream is checked afterwards: a full disk is a one-line error and
/// the previous file stays.
void write_archive_atomic(const std::string& path, torch::serialize::OutputArchive& archive);
/// Opens a checkpoint archive; errors name the file and suggest a fix.
torch::serialize::InputArchive open_checkpoint(const std::string& path);
/// Reads the `meta` JSON stored in a checkpoint.
Json read_checkpoint_meta(const std::string& path);
/// The optimizer step a checkpoint was written at; -1 for weights-only checkpoints (closed-form
/// fits).
int64_t read_checkpoint_step(const std::string& path);
/// Writes a weights-only checkpoint (model + meta) atomically, for models fitted in closed form.
void save_weights(const std::string& path, torch::nn::Module& module, const Json& meta);
/// Loads the model weights into `module`, then each EMA of `emas` found in the checkpoint into
/// its module (pass {} for the raw weights). Returns the checkpoint's step (-1 for weights-only
/// checkpoints), read from the same archive.
int64_t load_checkpoint_weights(const std::string& path, torch::nn::Module& module,
                                const std::vector<EmaSpec>& emas);

}  // namespace gm::train
