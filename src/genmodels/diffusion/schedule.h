// Discrete noise schedules for DDPM-style diffusion: linear betas (Ho et al. 2020, "Denoising
// Diffusion Probabilistic Models", Sec. 4) and the cosine schedule (Nichol & Dhariwal 2021,
// "Improved Denoising Diffusion Probabilistic Models", eq. 17), plus the forward process
// q(x_t|x_0). Index t in [0, T) is step t+1 of the papers' 1..T numbering. The continuous-noise
// view of a VP schedule (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
// Generative Models", Sec. 2 and Table 1, VP column): sigma = sqrt((1 - abar) / abar) and
// x_sigma = x_t / sqrt(abar) = x0 + sigma eps.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gm::diffusion {

/// A discrete noise schedule over T steps; all tensors float64 on CPU, length T.
struct NoiseSchedule {
  torch::Tensor betas, alphas_cumprod;
  int64_t num_steps() const;
  double alpha_bar(int64_t t) const;  ///< abar_t for t in [0, T)
  std::string name;
};

/// Ho et al. 2020: betas linear from beta_start to beta_end, scaled by 1000/T (improved-diffusion),
/// so the defaults give the paper's 1e-4..0.02 at T = 1000.
NoiseSchedule linear_schedule(int64_t T, double beta_start = 1e-4, double beta_end = 0.02);

/// Nichol & Dhariwal 2021, eq. 17: abar(t) = f(t)/f(0), f(t) = cos^2(((t/T)+s)/(1+s) * pi/2),
/// betas (1 - abar(t+1)/abar(t)) clipped at max_beta; alphas_cumprod[i] = f((i+1)/T)/f(0)
/// unclipped.
NoiseSchedule cosine_schedule(int64_t T, double s = 0.008, double max_beta = 0.999);

/// A schedule from noise levels (Karras et al. 2022, Table 1 VP): alphas_cumprod[i] = 1 / (1 +
/// sigma_i^2) for ascending sigmas, betas from their ratios. How continuous-time and VE models
/// (score/sde.h, score/ncsn.h) present themselves as discrete VP-equivalent schedules.
NoiseSchedule schedule_from_sigmas(const std::vector<double>& ascending_sigmas, std::string name);

/// By name: "linear" | "cosine" (error lists valid names otherwise).
NoiseSchedule make_schedule(const std::string& name, int64_t T);
std::vector<std::string> schedule_names();

/// abar at (possibly fractional) timesteps t (any dtype, N), linear interpolation of
/// alphas_cumprod between integer steps; float64 N on t's device. Errors outside [0, T-1].
torch::Tensor alpha_bar_at(const NoiseSchedule& s, const torch::Tensor& t);

/// Karras et al. 2022, Table 1 (VP): sigma = sqrt((1 - abar(t)) / abar(t)) with abar(t) from
/// alpha_bar_at (so the same interpolation and range check); float64 N on t's device.
torch::Tensor sigma_at(const NoiseSchedule& s, const torch::Tensor& t);

/// The exact inverse of sigma_at: abar* = 1 / (1 + sigma^2) is placed in the step interval with
/// abar_i >= abar* >= abar_{i+1} and alpha_bar_at's linear interpolation is solved for the
/// fraction, t = i + (abar_i - abar*) / (abar_i - abar_{i+1}). Clamped to [0, T-1]: sigma below
/// sigma_min gives 0, above sigma_max (including inf) gives T-1. sigma any float dtype, N (or
/// 0-d), each >= 0 (errors otherwise); float64 N on sigma's device.
torch::Tensor t_at_sigma(const NoiseSchedule& s, const torch::Tensor& sigma);

/// sigma at t = 0 and at t = T-1 (Karras et al. 2022, Table 1 VP: sigma(t) is increasing).
double sigma_min(const NoiseSchedule& s);
double sigma_max(const NoiseSchedule& s);

/// q(x_t | x_0) sample (Ho et al. eq. 4): sqrt(abar_t) x0 + sqrt(1-abar_t) noise; t int64 N.
torch::Tensor q_sample(const NoiseSchedule& s, const torch::Tensor& x0, const torch::Tensor& t,
                       const torch::Tensor& noise);

}  // namespace gm::diffusion
