// The variational bound of a discrete diffusion model (Ho et al. 2020, "Denoising Diffusion
// Probabilistic Models", eq. 5 and Sec. 3.3; Nichol & Dhariwal 2021, "Improved Denoising
// Diffusion Probabilistic Models", Sec. 2-3):
//   L_vlb = L_0 + sum_{t>=1} L_{t-1} + L_T,
//   L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)),  L_0 = -log p(x0 | x1) under the
//   discretised Gaussian decoder (eq. 13), L_T = KL(q(x_T | x0) || N(0, I)),
// with the model's variance fixed (beta or beta-tilde) or learned, Sigma = exp(v log beta_t + (1 -
// v) log beta-tilde_t) (Nichol & Dhariwal 2021, eq. 15). Terms are in bits per dimension (the mean
// over dimensions of nats / ln 2), so their sum is bits/dim of 8-bit data directly (the decoder
// is discrete: no dequantisation correction, metrics/bits_per_dim.h). Index t in [0, T) is step
// t+1 of the papers; step 1 (index 0) is the decoder.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>

#include "genmodels/diffusion/denoiser.h"
#include "genmodels/diffusion/schedule.h"

namespace gm::diffusion {

/// The reverse process's variance: beta_t, beta-tilde_t (Ho et al. 2020 Sec. 3.2) or learned.
enum class VarianceKind { Beta, BetaTilde, Learned };
VarianceKind parse_variance(const std::string& name);  ///< "beta" | "beta_tilde" | "learned"

/// KL(N(m1, e^lv1) || N(m2, e^lv2)) elementwise, nats.
torch::Tensor normal_kl(const torch::Tensor& mean1, const torch::Tensor& logvar1,
                        const torch::Tensor& mean2, const torch::Tensor& logvar2);

/// log P(x) elementwise for x on the 256-level grid of [-1, 1] under N(mean, e^(2 log_scale))
/// discretised to bins of width 2/255, the edge bins extended to -inf / +inf (Ho et al. 2020,
/// eq. 13), nats.
torch::Tensor discretized_gaussian_log_likelihood(const torch::Tensor& x, const torch::Tensor& mean,
                                                  const torch::Tensor& log_scale);

/// q(x_{t-1} | x_t, x0) (Ho et al. 2020 eq. 6-7) for int64 t (N): mean, variance beta-tilde_t
/// (N x 1 x ...) and its log clipped at index 0 to beta-tilde of index 1 (where it is 0).
struct Posterior {
  torch::Tensor mean, var, log_var;
};
Posterior q_posterior(const NoiseSchedule& s, const torch::Tensor& x0, const torch::Tensor& x_t,
                      const torch::Tensor& t);

/// log Sigma_t of p(x_{t-1} | x_t), shaped N x 1 x ... like x (or x's shape for learned): fixed
/// beta (with beta-tilde_1 at index 0, as improved-diffusion's "fixedlarge"), beta-tilde, or
/// learned from the fraction v (Nichol & Dhariwal 2021 eq. 15).
torch::Tensor p_log_variance(const NoiseSchedule& s, const torch::Tensor& x, const torch::Tensor& t,
                             VarianceKind kind, const torch::Tensor& v = {});

/// The bound's term at each row's index t (int64 N), bits/dim per row: the decoder NLL at t = 0,
/// the posterior KL otherwise. x0_pred is the model's x0 (it sets the mean by eq. 7).
torch::Tensor vlb_term(const NoiseSchedule& s, const torch::Tensor& x0, const torch::Tensor& x_t,
                       const torch::Tensor& t, const torch::Tensor& x0_pred,
                       const torch::Tensor& log_var);

/// L_T per row, bits/dim.
torch::Tensor prior_term(const NoiseSchedule& s, const torch::Tensor& x0);

/// The whole bound of a denoiser per row (x0 on the 8-bit grid of [-1, 1]), bits/dim: every t
/// with a fresh x_t ~ q(x_t | x0) from `gen`, plus the prior term. variance: the fixed kind when
/// the denoiser has no learned variance. progress(t done, T).
struct VlbResult {
  torch::Tensor total, prior, decoder;  ///< float64 N each, bits/dim
};
VlbResult vlb_bits_per_dim(const Denoiser& d, const torch::Tensor& x0, const Conditioning& cond,
                           VarianceKind variance, at::Generator& gen, bool clip_x0,
                           const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace gm::diffusion
