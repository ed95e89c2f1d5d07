// The noise levels of NCSN (Song & Ermon 2019, "Generative Modeling by Estimating Gradients of the
// Data Distribution", Sec. 4.2) chosen by NCSNv2's techniques (Song & Ermon 2020, "Improved
// Techniques for Training Score-Based Generative Models", Sec. 3):
//  - technique 1: sigma_1 = the largest pairwise Euclidean distance in the training data;
//  - technique 2: a geometric sequence with ratio gamma such that
//    Phi(sqrt(2D) (gamma - 1) + 3 gamma) - Phi(sqrt(2D) (gamma - 1) - 3 gamma) = 0.5;
//  - technique 4 (the Langevin step constant) is sampling::langevin_step_constant.
// As a discrete VP-equivalent schedule (abar_i = 1 / (1 + sigma_i^2), index 0 = the smallest
// sigma) every sampler drives it, and the DDPM simple loss on it with an eps target is exactly
// NCSN's denoising score matching with lambda(sigma) = sigma^2: sigma^2 || s(x~; sigma) + n /
// sigma ||^2 = || -sigma s - n ||^2 with eps = -sigma s (the network's s(x, sigma) = s(x) / sigma
// of NCSNv2 Sec. 3.2, read as an eps predictor).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "genmodels/diffusion/schedule.h"

namespace gm::score {

/// max_{i<j} ||x_i - x_j|| over the rows of x (N x ...), exactly, by blocks of Gram matrices;
/// progress(fraction done).
double max_pairwise_distance(const torch::Tensor& x,
                             const std::function<void(double)>& progress = {});

/// Technique 2's ratio gamma for data of dimension D (bisection on gamma in (1, 2]).
double ncsn_gamma(int64_t D);

/// L geometric levels from sigma_1 down to sigma_L; num_levels = 0 chooses L from ncsn_gamma(D).
std::vector<double> ncsn_sigmas(double sigma_1, double sigma_L, int64_t num_levels, int64_t D);

/// The levels as a discrete schedule (ascending sigma with the index), named "ncsn".
diffusion::NoiseSchedule ncsn_schedule(const std::vector<double>& sigmas_descending);

}  // namespace gm::score
