// The simple diffusion training loss (Ho et al. 2020, "Denoising Diffusion Probabilistic Models",
// eq. 14) with eps, x0 or v targets (Salimans & Ho 2022) and label dropout for classifier-free
// guidance (Ho & Salimans 2022, Alg. 1).
#pragma once
#include <torch/torch.h>

#include "genmodels/diffusion/denoiser.h"
#include "genmodels/diffusion/schedule.h"

namespace gm::diffusion {

struct LossOptions {
  Prediction prediction = Prediction::Eps;  ///< what the network outputs (and is regressed on)
  double class_dropout = 0.1;  ///< probability a label is replaced by null_label (CFG training)
  int64_t null_label = -1;     ///< the null class (usually num_classes); needed if dropout > 0
};

/// The simple loss (Ho et al. 2020 eq. 14) with eps/x0/v targets; t ~ U{0..T-1}; labels replaced
/// by null_label with prob class_dropout (CFG training; labels undefined = unconditional).
/// All randomness from torch's default generator, drawn in the order t, noise, label mask.
/// Returns the scalar mean squared error over all elements.
torch::Tensor diffusion_loss(const NetFn& net, const NoiseSchedule& s, const torch::Tensor& x0,
                             const torch::Tensor& labels, const LossOptions& o);

}  // namespace gm::diffusion
