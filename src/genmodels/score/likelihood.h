// Exact likelihood of any denoiser through the probability-flow ODE (Song et al. 2021, "Score-
// Based Generative Modeling through SDEs", Sec. 4.3 and App. D.2; Chen et al. 2018, "Neural ODEs",
// Thm. 1, the instantaneous change of variables), with Hutchinson's trace estimator (Hutchinson
// 1989; Grathwohl et al. 2019, FFJORD, Sec. 3.1).
//
// In sigma space (sde.h, Karras et al. 2022 eq. 3) with u = log sigma the ODE reads dx/du = f =
// x - D(x; e^u), and along a solution d log p_u(x(u)) / du = -div f = -(dim - div_x D). So
//   log p_{sigma_min}(x) = log p_prior(x(u_max)) + integral_{u_min}^{u_max} (dim - div_x D) du,
// integrated by the adaptive RK45 of sampling/rk45.h (each row its own steps) on the state
// [x, integral]. div_x D is z^T J_D z for a probe z fixed over the solve (one vector-Jacobian
// product per evaluation; unbiased for Rademacher or Gaussian z), or the exact trace (dim
// backward passes: tests and low-dimensional data). The prior is N(0, (1 + sigma_max^2) I): the
// VP prior N(0, I) carried into sigma space (x / sqrt(abar)); for a VE model it differs from
// N(0, sigma_max^2 I) by a term of order 1 / sigma_max^2.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "genmodels/diffusion/denoiser.h"

namespace gm::score {

struct LikelihoodOptions {
  double rtol = 1e-5, atol = 1e-5;  ///< RK45 tolerances (score_sde's defaults)
  bool exact_trace = false;         ///< exact div D (dim backward passes) instead of the probe
  double prior_var = 0.0;           ///< variance of the Gaussian prior (0 = 1 + sigma_max^2)
  double sigma_min = 0.0, sigma_max = 0.0;  ///< integration range (0 = the denoiser's)
};

struct LikelihoodResult {
  torch::Tensor log_p;       ///< float64 N: log p_{sigma_min}(x) in nats
  torch::Tensor prior_logp;  ///< float64 N: log p_prior(x(u_max))
  torch::Tensor delta;       ///< float64 N: the integral of div f
  torch::Tensor x_prior;     ///< x carried to sigma_max (N x ...)
  int64_t nfe = 0;           ///< denoiser evaluations (each with one backward pass, or dim)
};

/// Rademacher probes (+-1 with equal probability) shaped like x, from `gen`.
torch::Tensor rademacher_like(const torch::Tensor& x, at::Generator& gen);

/// log p(x) of the denoiser's model at sigma_min (see the file comment). x: N x ... float; probe:
/// like x (ignored with exact_trace). progress(fraction of the log-sigma range done).
LikelihoodResult ode_log_likelihood(const diffusion::Denoiser& d, const torch::Tensor& x,
                                    const diffusion::Conditioning& cond, const torch::Tensor& probe,
                                    const LikelihoodOptions& o,
                                    const std::function<void(double)>& progress = {});

/// The denoising error at one noise level: E ||D(x + sigma n; sigma) - x||^2 per dimension over
/// the rows of x (mse_x0), and the same error in noise units, mse_x0 / sigma^2 (mse_eps: the
/// simple eps loss at that level). The training loss of every denoiser at a common sigma, so
/// models with different schedules and weightings can be compared level by level (the quantity
/// Karras et al. 2022 plot in Fig. 5a); the Bayes-optimal denoiser of N(mu, s^2 I) data reaches
/// mse_x0 = s^2 sigma^2 / (s^2 + sigma^2).
struct DenoiseError {
  double sigma = 0.0, mse_x0 = 0.0, mse_eps = 0.0;
};
/// One entry per sigma (each in the denoiser's range), the same noise n for every level.
std::vector<DenoiseError> denoising_error(const diffusion::Denoiser& d, const torch::Tensor& x,
                                          const diffusion::Conditioning& cond,
                                          const std::vector<double>& sigmas, at::Generator& gen);
/// `count` log-spaced levels across [lo, hi] (both included).
std::vector<double> log_spaced(double lo, double hi, int64_t count);

/// The trace estimate z^T J z of the Jacobian of fn at x (N x ...), per row, for probes z like x,
/// by one vector-Jacobian product; exact = true sums the dim unit-vector products instead.
torch::Tensor jacobian_trace(const std::function<torch::Tensor(const torch::Tensor&)>& fn,
                             const torch::Tensor& x, const torch::Tensor& probe, bool exact);

}  // namespace gm::score
