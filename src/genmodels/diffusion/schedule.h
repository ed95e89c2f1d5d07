// Discrete noise schedules for DDPM-style diffusion: linear betas (Ho et al. 2020, "Denoising
// Diffusion Probabilistic Models", Sec. 4) and the cosine schedule (Nichol & Dhariwal 2021,
// "Improved Denoising Diffusion Probabilistic Models", eq. 17), plus the forward process
// q(x_t|x_0). Index t in [0, T) is step t+1 of the papers' 1..T numbering.
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

/// By name: "linear" | "cosine" (error lists valid names otherwise).
NoiseSchedule make_schedule(const std::string& name, int64_t T);
std::vector<std::string> schedule_names();

/// abar at (possibly fractional) timesteps t (any dtype, N), linear interpolation of
/// alphas_cumprod between integer steps; float64 N on t's device. Errors outside [0, T-1].
torch::Tensor alpha_bar_at(const NoiseSchedule& s, const torch::Tensor& t);

/// q(x_t | x_0) sample (Ho et al. eq. 4): sqrt(abar_t) x0 + sqrt(1-abar_t) noise; t int64 N.
torch::Tensor q_sample(const NoiseSchedule& s, const torch::Tensor& x0, const torch::Tensor& t,
                       const torch::Tensor& noise);

}  // namespace gm::diffusion
