// Registry entries "lda", "qda", "gnb", "bnb": the generative classifiers of classic/ as genmodels
// models. They are fitted in closed form (`genmodels train` reports test accuracy, bits/dim, fit
// and predict time), saved as runs, sampled per class and evaluated like every other family.
#pragma once
#include "genmodels/family/model.h"

namespace gm {

std::vector<ModelEntry> classic_entries();

/// How 8-bit images become the classic models' [0, 1] features (pixel level k in 0..255).
enum class PixelFeatures {
  Scaled,       ///< k / 255 (scikit-learn's usual scaling)
  Dequantized,  ///< (k + u) / 256, u ~ U[0, 1) from `seed` (bits/dim convention, R = 1)
  BinCentre,    ///< (k + 1/2) / 256 (deterministic features of a dequantised model)
};

/// N x D float32 features of a dataset: images by `mode`; other data (2-D toys) unchanged.
torch::Tensor classic_features(const data::Dataset& d, PixelFeatures mode, uint64_t seed = 0);

}  // namespace gm
