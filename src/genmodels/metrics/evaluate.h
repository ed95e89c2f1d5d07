// The one evaluation entry `genmodels eval` calls: image samples in, a JSON of metrics out, all
// measured in the Fashion-MNIST domain evaluator's feature space against the Fashion-MNIST test
// set (FID: Heusel et al. 2017; KID: Binkowski et al. 2018; precision/recall: Kynkaanniemi et al.
// 2019; IS: Salimans et al. 2016), plus the class metrics of class_metrics.h.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "genmodels/core/json.h"
#include "genmodels/metrics/evaluator.h"

namespace gm::metrics {

/// Settings of one evaluation.
struct EvalOptions {
  std::vector<std::string> metrics = {"fid", "kid", "pr", "acc", "is"};  ///< see metric_names()
  int64_t n = 10000;      ///< evaluate the first n samples (0 = all)
  uint64_t seed = 0;      ///< seeds KID's subsets
  std::string cache_dir;  ///< evaluator and reference cache; empty = cache_dir()
  bool verbose = true;    ///< progress and cache messages on stderr
};

/// The valid names for EvalOptions::metrics: fid, kid, pr, acc, is.
const std::vector<std::string>& metric_names();

/// Test-set features of `evaluator`, cached in dir/fmnist_test_features_<fingerprint>.pt (rebuilt
/// when missing, unreadable, or from another evaluator): N x F float64.
torch::Tensor reference_features(const Evaluator& evaluator, const std::string& dir, bool verbose);

/// uint8 N x H x W, N x H x W x C or N x C x H x W (C = 1 or 3; RGB -> BT.601 luma) to float
/// [-1,1] N x 1 x H x W via k / 127.5 - 1.
torch::Tensor images_to_float(const torch::Tensor& images_uint8);

/// images: uint8 N x 28 x 28 (or N x 28 x 28 x 1) samples; labels: requested classes (int64 N) or
/// undefined. Reference = Fashion-MNIST test set (its features cached in cache_dir keyed by the
/// evaluator fingerprint). Returns {"n", "seed", "evaluator", "reference", "metrics": {name:
/// {"value", ["std"]}}, ...}.
Json evaluate_images(const torch::Tensor& images_uint8, const torch::Tensor& requested_labels,
                     const EvalOptions& options);

/// As evaluate_images with an already loaded evaluator.
Json evaluate_images(const Evaluator& evaluator, const torch::Tensor& images_uint8,
                     const torch::Tensor& requested_labels, const EvalOptions& options);

/// Loads samples from a .npy (uint8 N x H x W [x C]) file or a directory of PNGs (sorted by file
/// name; 8-bit gray, gray+alpha, RGB or RGBA, alpha dropped). Errors name the file.
torch::Tensor load_samples(const std::string& path_npy_or_dir);

/// Pretty table of a result JSON (metric, value, +-).
std::string format_table(const Json& result);

}  // namespace gm::metrics
