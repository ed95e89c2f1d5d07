// Weights interop (issue #20): a run's weights out to a safetensors file with a config.json that
// says how to rebuild the model (`genmodels export`), and back in, either as a new run directory
// that `genmodels sample` accepts (`genmodels import`) or as the starting point of a training run
// (`genmodels train MODEL ... --init FILE.safetensors`). Tensors keep their LibTorch names
// ("unet.conv_in.weight"), which are the names a PyTorch twin of the same modules uses.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "genmodels/io/safetensors.h"

namespace gm {

/// The files of an export directory.
constexpr const char* kExportWeights = "model.safetensors";
constexpr const char* kExportConfig = "config.json";

struct ExportArgs {
  std::string run;                     ///< run directory (or a checkpoint file of one)
  std::string format = "safetensors";  ///< the only format
  bool ema = false;                    ///< the EMA weights instead of the raw ones
  std::string out;                     ///< directory ("" = RUN/export)
};

struct ExportResult {
  std::string weights;  ///< OUT/model.safetensors
  std::string config;   ///< OUT/config.json
  int64_t tensors = 0;
  int64_t bytes = 0;  ///< of tensor data
};

/// Writes the run's parameters and buffers (by their LibTorch names) as OUT/model.safetensors
/// and the model name, resolved config and data description as OUT/config.json. With `ema`,
/// the EMA weights (a one-line error for runs that have none, e.g. closed-form fits).
ExportResult run_export(const ExportArgs& args);

struct ImportArgs {
  std::string file;         ///< FILE.safetensors
  std::string config_json;  ///< "" = config.json beside the file
  std::string out;          ///< the run directory to write
};

/// Builds the model from the config.json, loads the file's weights into it (every tensor by
/// name, exact shapes) and writes a run directory (config.toml and a weights-only checkpoint) for
/// `genmodels sample` / `eval`. Returns the run directory.
std::string run_import(const ImportArgs& args);

/// Copies the tensors of `weights` (read from `origin`) into `module`'s parameters and buffers
/// by name. Names the file and the tensor when one is missing, extra, of another shape, or of a
/// dtype that does not convert (floating point converts to floating point; others must match).
void load_named_tensors(torch::nn::Module& module, const io::Safetensors& weights,
                        const std::string& origin);

/// train --init: reads FILE.safetensors and loads it into `module` (load_named_tensors).
void init_from_safetensors(torch::nn::Module& module, const std::string& file);

}  // namespace gm
