// Samplers in sigma space (sampling/sigmas.h): each takes x at sigmas[0] (x = x_T sqrt(1 +
// sigma_0^2) for a VP model), steps down the grid, which ends with 0, and returns the sample.
// One file per family; every one reads its options from SamplerOptions (the keys its row in
// samplers.cpp lists), draws its noise from `noise` and calls D only through `m` (which counts
// NFE). Papers and equations are cited at each function.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "genmodels/sampling/noise.h"
#include "genmodels/sampling/sampler_options.h"
#include "genmodels/sampling/sigmas.h"

namespace gm::sampling {

/// Everything a sigma sampler is given.
struct SigmaArgs {
  SigmaModel& m;
  const std::vector<double>& sigmas;  ///< descending, last = 0
  const SamplerOptions& o;
  const Noise& noise;
  const StepCallback& callback;
};

// euler.cpp: Karras et al. 2022 Alg. 1-2.
torch::Tensor sample_euler(torch::Tensor x, const SigmaArgs& a);
torch::Tensor sample_heun(torch::Tensor x, const SigmaArgs& a);
torch::Tensor sample_euler_ancestral(torch::Tensor x, const SigmaArgs& a);
// lms.cpp: variable-step Adams-Bashforth on the probability-flow ODE.
torch::Tensor sample_lms(torch::Tensor x, const SigmaArgs& a);
// dpm_solver.cpp: Lu et al. 2022, DPM-Solver++ (2M, 2M SDE, 2S ancestral).
torch::Tensor sample_dpmpp_2m(torch::Tensor x, const SigmaArgs& a);
torch::Tensor sample_dpmpp_2m_sde(torch::Tensor x, const SigmaArgs& a);
torch::Tensor sample_dpmpp_2s_ancestral(torch::Tensor x, const SigmaArgs& a);
// unipc.cpp: Zhao et al. 2023, UniPC with B(h) = e^h - 1 (bh2).
torch::Tensor sample_unipc(torch::Tensor x, const SigmaArgs& a);
// pc.cpp: Song et al. 2021 Alg. 2, reverse-diffusion predictor + Langevin corrector.
torch::Tensor sample_pc(torch::Tensor x, const SigmaArgs& a);
// langevin.cpp: Song & Ermon 2019 Alg. 1, annealed Langevin dynamics over the grid's levels.
torch::Tensor sample_langevin(torch::Tensor x, const SigmaArgs& a);
/// NCSNv2's technique 4 (Song & Ermon 2020, Sec. 3.3): the step constant eps that makes the
/// variance after T Langevin steps at level sigma_i, started at (gamma sigma_i)^2 (the previous
/// level's), as close as possible to sigma_i^2: r^(2T) (gamma^2 - v) + v with r = 1 - eps /
/// sigma_L^2 and v = 2 eps / (sigma_L^2 (1 - r^2)) (the stationary variance over sigma_i^2).
double langevin_step_constant(double gamma, int64_t T, double sigma_last);
/// The eps the langevin row uses on a descending grid (ending with 0): sample.langevin_eps, or
/// when that is 0 langevin_step_constant at the grid's mean level ratio (recorded in the metadata).
double langevin_eps_for(const std::vector<double>& sigmas, const SamplerOptions& o);
// ode.cpp: the probability-flow ODE with adaptive Dormand-Prince RK45 (sampling/rk45.h); uses
// only sigmas.front() and the last nonzero sigma of the grid.
torch::Tensor sample_ode(torch::Tensor x, const SigmaArgs& a);

/// The ancestral split of a step sigma -> sigma_next (Ho et al. 2020's posterior in sigma space):
/// sigma_up = min(sigma_next, eta sqrt(sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2)),
/// sigma_down = sqrt(sigma_next^2 - sigma_up^2): step deterministically to sigma_down, then add
/// sigma_up noise.
struct AncestralStep {
  double down, up;
};
AncestralStep ancestral_step(double sigma, double sigma_next, double eta);

}  // namespace gm::sampling
