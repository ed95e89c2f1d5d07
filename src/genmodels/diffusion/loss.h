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
  /// The network also returns the variance fraction v (2C channels, Denoiser's learned_variance).
  bool learned_variance = false;
};

/// Labels for a training batch of n: labels (int64 N) moved to `device`, each replaced by
/// null_label with probability p (classifier-free guidance training, Ho & Salimans 2022 Alg. 1);
/// a float N x E embedding instead has each dropped row set to zero (the null embedding, no
/// null_label needed); undefined labels stay undefined. One torch::rand draw from the default
/// generator when p > 0.
torch::Tensor drop_labels(const torch::Tensor& labels, int64_t n, double p, int64_t null_label,
                          const torch::Device& device);

/// Per-row terms of a training batch: the simple loss (mean over elements) and, for a
/// learned-variance network, L_vlb's term at the row's t in bits/dim (diffusion/vlb.h) computed
/// with the mean's output detached, so it trains only the variance (Nichol & Dhariwal 2021, Sec.
/// 3.1, L_hybrid = L_simple + lambda L_vlb).
struct LossTerms {
  torch::Tensor mse;  ///< N
  torch::Tensor vlb;  ///< N, or undefined without a learned variance
  torch::Tensor t;    ///< int64 N, the timesteps used
};
/// As diffusion_loss (same draws in the same order); t (int64 N) replaces the uniform draw when
/// defined (importance sampling, diffusion/timestep_sampler.h).
LossTerms diffusion_loss_terms(const NetFn& net, const NoiseSchedule& s, const torch::Tensor& x0,
                               const torch::Tensor& labels, const LossOptions& o,
                               const torch::Tensor& t = {});

/// The simple loss (Ho et al. 2020 eq. 14) with eps/x0/v targets; t ~ U{0..T-1}; labels replaced
/// by null_label with prob class_dropout (CFG training; labels undefined = unconditional).
/// All randomness from torch's default generator, drawn in the order t, noise, label mask.
/// Returns the scalar mean squared error over all elements.
torch::Tensor diffusion_loss(const NetFn& net, const NoiseSchedule& s, const torch::Tensor& x0,
                             const torch::Tensor& labels, const LossOptions& o);

}  // namespace gm::diffusion
