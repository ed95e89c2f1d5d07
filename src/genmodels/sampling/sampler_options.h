// The sample.* settings of diffusion sampling (bound to their keys by sampler_keys() in
// samplers.h). Stored in the run at training time, overridable at sample time (--set
// sample.KEY=V or the CLI flags). Each sampler reads only the keys its table row lists.
#pragma once
#include <cstdint>
#include <string>

namespace gm::sampling {

struct SamplerOptions {
  std::string sampler = "ddim";      ///< sample.sampler: a row of sampler_table()
  int64_t steps = 0;                 ///< sample.steps: 0 = the sampler's default
  double eta = 0.0;                  ///< sample.eta: DDIM noise (0 deterministic, 1 DDPM-like)
  std::string spacing = "trailing";  ///< sample.spacing: linspace | leading | trailing
  std::string variance = "auto";     ///< sample.variance: DDPM auto | beta | beta_tilde | learned
  double guidance = 1.0;             ///< sample.guidance: classifier-free guidance scale
  bool clip_x0 = true;               ///< sample.clip_x0: clip predicted x0 (images only)
  // Sigma-space samplers (sampling/sigmas.h, sampling/sigma_samplers.h).
  std::string schedule = "karras";   ///< sample.schedule: discrete | karras | exponential
  double sigma_min = 0.0;            ///< sample.sigma_min: 0 = the model's
  double sigma_max = 0.0;            ///< sample.sigma_max: 0 = the model's
  double rho = 7.0;                  ///< sample.rho: Karras grid exponent
  std::string heun = "exponential";  ///< sample.heun: heun's correction, exponential | karras
  double s_churn = 0.0;              ///< sample.s_churn: Karras Alg. 2 stochasticity (euler, heun)
  double s_noise = 1.0;              ///< sample.s_noise: scale of the added noise
  double s_tmin = 0.0;               ///< sample.s_tmin: churn only for sigma >= s_tmin
  double s_tmax = 0.0;               ///< sample.s_tmax: churn only for sigma <= s_tmax (0 = inf)
  double ancestral_eta = 1.0;        ///< sample.ancestral_eta: euler_a, dpm++2s_a, dpm++2m_sde
  int64_t order = 0;                 ///< sample.order: unipc 1-3, lms 1-4 (0 = sampler default)
  std::string predictor = "euler_maruyama";  ///< sample.predictor: pc euler_maruyama | ancestral
  double snr = 0.16;                         ///< sample.snr: pc Langevin signal-to-noise ratio
  int64_t corrector_steps = 1;  ///< sample.corrector_steps: pc Langevin steps per level
  double rtol = 1e-4;           ///< sample.rtol: ode relative tolerance
  double atol = 1e-4;           ///< sample.atol: ode absolute tolerance
  int64_t langevin_steps = 5;   ///< sample.langevin_steps: langevin steps T per noise level
  double langevin_eps = 0.0;    ///< sample.langevin_eps: step constant (0 = NCSNv2 technique 4)
};

}  // namespace gm::sampling
