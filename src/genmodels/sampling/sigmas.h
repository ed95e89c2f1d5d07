// Sigma space (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative
// Models", Sec. 2-3): x = x0 + sigma n, the probability-flow ODE dx/dsigma = (x - D(x; sigma)) /
// sigma (eq. 3 with sigma(t) = t, s(t) = 1), and the noise-level grids samplers step over.
//
// Grids (sample.schedule), descending, always ending with a final 0:
//  - discrete: the sigmas of the model's own timesteps, respaced (sample.spacing: trailing,
//    leading, linspace; Lin et al. 2023 Table 2), so a sigma sampler visits exactly the noise
//    levels DDIM visits;
//  - karras: (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho
//    (Karras et al. 2022 eq. 5, rho = 7);
//  - exponential: log-linear from sigma_max to sigma_min (equal steps in lambda = -log sigma,
//    the variable of DPM-Solver, Lu et al. 2022).
// sigma_min / sigma_max default to the range the model was trained on; a requested range outside
// it is an error (the discrete network has no timestep there).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "genmodels/diffusion/denoiser.h"
#include "genmodels/sampling/timesteps.h"

namespace gm::sampling {

enum class SigmaGrid { Discrete, Karras, Exponential };
SigmaGrid parse_sigma_grid(const std::string& name);  ///< discrete | karras | exponential
std::string to_string(SigmaGrid g);
std::vector<std::string> sigma_grid_names();

struct GridOptions {
  SigmaGrid grid = SigmaGrid::Karras;
  int64_t steps = 20;                   ///< noise levels before the final 0
  Spacing spacing = Spacing::Trailing;  ///< discrete grid only
  double sigma_min = 0.0;               ///< 0 = the model's
  double sigma_max = 0.0;               ///< 0 = the model's
  double rho = 7.0;                     ///< karras grid only
};

/// Karras et al. 2022 eq. 5: n sigmas from hi down to lo (n >= 1; n = 1 gives {hi}).
std::vector<double> karras_sigmas(int64_t n, double lo, double hi, double rho = 7.0);
/// n sigmas log-linear from hi down to lo.
std::vector<double> exponential_sigmas(int64_t n, double lo, double hi);
/// The grid for `d` (steps + 1 values, descending, last = 0). Errors name the sample.* key.
std::vector<double> make_sigmas(const diffusion::Denoiser& d, const GridOptions& o);

/// D(x; sigma) of a Denoiser with its conditioning, counting network evaluations (NFE: one per
/// call, however many rows or guidance halves it batches). Samplers only see this.
class SigmaModel {
 public:
  SigmaModel(const diffusion::Denoiser& d, diffusion::Conditioning cond, bool clip_x0);
  /// D(x; sigma) at one sigma for every row, which must lie in [sigma_min, sigma_max].
  torch::Tensor operator()(const torch::Tensor& x, double sigma);
  /// D(x; sigma) at a per-row sigma (float N).
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& sigma);
  /// D(x; sigma) for a subset of the batch: x and sigma hold rows `index` (int64) of it, whose
  /// labels / embeddings are taken from the conditioning.
  torch::Tensor rows(const torch::Tensor& x, const torch::Tensor& sigma,
                     const torch::Tensor& index);
  /// D at an intermediate point a solver chooses (a churned or midpoint sigma), clamped into the
  /// trained range first.
  torch::Tensor clamped(const torch::Tensor& x, double sigma);
  int64_t nfe() const { return nfe_; }
  double sigma_min() const { return lo_; }
  double sigma_max() const { return hi_; }

 private:
  const diffusion::Denoiser& d_;
  diffusion::Conditioning cond_;
  bool clip_x0_;
  double lo_, hi_;
  int64_t nfe_ = 0;
};

/// Progress of one batch: (steps done, steps).
using StepCallback = std::function<void(int64_t, int64_t)>;

}  // namespace gm::sampling
