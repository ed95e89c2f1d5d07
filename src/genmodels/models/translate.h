// The parts of `genmodels translate` that do not need a loaded run: reading the inputs (a folder
// of images, one image, a .npy, or a dataset spec whose test split gives inputs and, when paired,
// targets) and scoring the outputs (L1 / PSNR to targets, cycle L1, and with the Fashion-MNIST
// evaluator class accuracy and FID against the target domain).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "genmodels/core/json.h"
#include "genmodels/family/model.h"

namespace gm {

struct TranslateInputs {
  torch::Tensor images;            ///< float [-1, 1] N x C x H x W, the run's input domain
  torch::Tensor targets;           ///< paired dataset inputs: the true outputs (else undefined)
  torch::Tensor labels;            ///< the class each output should have (else undefined)
  torch::Tensor reference;         ///< images of the target domain for FID (else undefined)
  std::vector<std::string> names;  ///< file names (folder / file inputs)
  std::string source;              ///< what was read, for messages and PNG metadata
};

/// Reads `input` for a run trained on `info` translating `direction` with `channels` input
/// channels: an existing directory (its PNG/JPEG/BMP files, sorted), an image file, a .npy (uint8
/// N x H x W [x C] or float [-1, 1] N x C x H x W), or else a dataset spec, read from its test
/// split (paired specs give targets; a single Fashion-MNIST class as the target domain gives
/// labels). Images are converted to `channels` and resized to the run's size. Throws gm::Error
/// (one line) naming the input.
TranslateInputs read_translate_inputs(const std::string& input, const DataInfo& info,
                                      const std::string& direction, int64_t channels);

/// {"n", "l1", "psnr" (targets), "cycle_l1" (when `cycle` is defined), "class_accuracy" (labels;
/// "class_accuracy_per_class" when they hold several classes, "target_class_accuracy" of the true
/// targets when paired), "fid" (reference)}; pixel metrics on [0, 1]; evaluator metrics for 28x28
/// gray outputs only.
Json translation_metrics(const TranslateInputs& in, const torch::Tensor& outputs,
                         const torch::Tensor& cycle);

}  // namespace gm
