// DDIM sampling (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", eq. 12 with
// sigma from eq. 16 scaled by eta; eta = 0 is deterministic, eta = 1 is DDPM-like).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "genmodels/diffusion/denoiser.h"
#include "genmodels/sampling/noise.h"

namespace gm::sampling {

/// DDIM (Song et al. 2021 eq. 12, sigma from eq. 16 scaled by eta) over a descending timestep
/// subsequence. x_T given; noise (eta > 0) from `noise`
/// (sampling/noise.h).
/// callback(steps_done, total) after every step. clip_x0: clamp predicted x0 to [-1, 1] (and
/// recompute eps from it). Runs under torch::NoGradGuard.
torch::Tensor sample_ddim(const diffusion::Denoiser& d, torch::Tensor x_T,
                          const std::vector<int64_t>& timesteps, double eta,
                          const diffusion::Conditioning& cond = {}, const Noise& noise = {},
                          const std::function<void(int64_t, int64_t)>& callback = {},
                          bool clip_x0 = false);

}  // namespace gm::sampling
