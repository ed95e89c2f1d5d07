// Ancestral DDPM sampling (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", Alg. 2)
// over any descending timestep subsequence, with respaced betas computed from abar (Nichol &
// Dhariwal 2021, "Improved DDPM", Sec. 4).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "genmodels/diffusion/denoiser.h"
#include "genmodels/diffusion/vlb.h"
#include "genmodels/sampling/noise.h"

namespace gm::sampling {

/// sigma_t^2 = beta_t or beta-tilde_t = (1-abar_{t-1})/(1-abar_t) beta_t (Ho et al. 2020 Sec 3.2),
/// or learned: exp(v log beta_t + (1 - v) log beta-tilde_t) with the respaced betas (Nichol &
/// Dhariwal 2021, eq. 15 and Sec. 4).
using DdpmVariance = diffusion::VarianceKind;
/// "beta" | "beta_tilde" | "learned", or "auto": learned when the model learned it, else
/// beta_tilde.
DdpmVariance ddpm_variance(const std::string& name, bool model_learned_it);

/// Ancestral DDPM sampling (Ho et al. 2020 Alg. 2), over any descending timestep subsequence
/// (respaced betas from abar, Nichol & Dhariwal 2021 Sec 4). x_T given; noise from `noise`
/// (sampling/noise.h). callback(steps_done, total) after every step. clip_x0: clamp the predicted
/// x0 to [-1, 1] before forming the posterior mean (images only). Runs under torch::NoGradGuard.
torch::Tensor sample_ddpm(const diffusion::Denoiser& d, torch::Tensor x_T,
                          const std::vector<int64_t>& timesteps, DdpmVariance var,
                          const diffusion::Conditioning& cond = {}, const Noise& noise = {},
                          const std::function<void(int64_t, int64_t)>& callback = {},
                          bool clip_x0 = false);

}  // namespace gm::sampling
