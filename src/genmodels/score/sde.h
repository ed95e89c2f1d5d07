// The forward SDEs of Song et al. 2021 ("Score-Based Generative Modeling through Stochastic
// Differential Equations", Sec. 3.4 and App. B): dx = f(t) x dt + g(t) dw on t in [0, 1] with a
// Gaussian perturbation kernel p_t(x | x0) = N(m(t) x0, s(t)^2 I). One file per SDE:
//   ve_sde.cpp    VE (eq. 30):     m = 1, s = sigma_min (sigma_max / sigma_min)^t
//   vp_sde.cpp    VP (eq. 32-33):  m = exp(-t^2 (b1 - b0) / 4 - t b0 / 2), s = sqrt(1 - m^2)
//   subvp_sde.cpp sub-VP (eq. 34): m as VP, s = 1 - m^2
//
// The sigma-space view (Karras et al. 2022, "Elucidating the Design Space", Sec. 2, eq. 4 with
// s(t) = m(t)): x / m(t) = x0 + sigma(t) n with sigma(t) = s(t) / m(t), increasing in t. This is
// how every sampler and the likelihood code drive these models: through a diffusion::Denoiser
// whose discrete schedule holds abar_i = 1 / (1 + sigma(t_i)^2) on a grid of t (discretize()), and
// whose network function maps a (possibly fractional) grid index back to the exact continuous t
// (t_at_sigma()). The reverse SDE and probability-flow ODE in t (eq. 6 and 13) are given below
// for solvers that work in the SDE's own coordinates.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "genmodels/diffusion/denoiser.h"
#include "genmodels/diffusion/schedule.h"

namespace gm::score {

class Sde {
 public:
  virtual ~Sde() = default;
  virtual std::string name() const = 0;
  /// Mean coefficient m(t) of the perturbation kernel.
  virtual double mean_coef(double t) const = 0;
  /// Standard deviation s(t) of the perturbation kernel.
  virtual double std(double t) const = 0;
  /// Linear drift coefficient: f(x, t) = drift_coef(t) x.
  virtual double drift_coef(double t) const = 0;
  /// Diffusion coefficient g(t).
  virtual double diffusion(double t) const = 0;
  /// The exact inverse of sigma(t) = std(t) / mean_coef(t) on [0, 1] (clamped to it).
  virtual double t_at_sigma(double sigma) const = 0;
  /// Smallest t trained and integrated (score_sde's eps: 1e-5 for every SDE).
  virtual double t_min() const { return 1e-5; }

  double sigma(double t) const { return std(t) / mean_coef(t); }
  /// Marginal mean and std of x_t for x0 ~ N(mu, s0^2 I) per coordinate: m mu and
  /// sqrt(m^2 s0^2 + s^2) (the kernel convolved with the data).
  double marginal_std(double t, double data_std) const;
};

/// VE: sigma_min, sigma_max; VP and sub-VP: beta_min, beta_max (score_sde's 0.1 and 20).
struct SdeOptions {
  double sigma_min = 0.01, sigma_max = 50.0;
  double beta_min = 0.1, beta_max = 20.0;
};
/// "ve" | "vp" | "subvp"; the error lists the valid names.
std::unique_ptr<Sde> make_sde(const std::string& name, const SdeOptions& o);
std::vector<std::string> sde_names();

std::unique_ptr<Sde> ve_sde(double sigma_min, double sigma_max);
std::unique_ptr<Sde> vp_sde(double beta_min, double beta_max);
std::unique_ptr<Sde> subvp_sde(double beta_min, double beta_max);

/// The VP family's inverse: the t in [0, 1] with -log m(t) = L, i.e. the positive root of
/// (b1 - b0) t^2 / 4 + b0 t / 2 = L (shared by vp_sde.cpp and subvp_sde.cpp).
double vp_t_at_log_mean(double L, double beta_min, double beta_max);

/// The SDE as a discrete VP-equivalent schedule on T points t_i = t_min + (1 - t_min) i / (T-1):
/// alphas_cumprod[i] = 1 / (1 + sigma(t_i)^2) (Karras et al. 2022, Table 1), betas from their
/// ratios, so DDPM/DDIM rows and every sigma sampler run on it; name = "sde:" + name().
diffusion::NoiseSchedule discretize(const Sde& sde, int64_t T = 1000);

/// The continuous t of a (fractional) index of discretize(sde, T)'s schedule, exact in sigma:
/// t = t_at_sigma(sigma_at(schedule, index)). index float N; returns float64 N.
torch::Tensor t_at_index(const Sde& sde, const diffusion::NoiseSchedule& s,
                         const torch::Tensor& index);

/// Song et al. 2021 eq. 6 / 13 drifts in the SDE's own coordinates, given the score at (x, t):
/// reverse SDE dx = [f(t) x - g(t)^2 score] dt + g(t) dw_bar (integrated from t = 1 down), and the
/// probability-flow ODE dx/dt = f(t) x - g(t)^2 score / 2.
torch::Tensor reverse_sde_drift(const Sde& sde, const torch::Tensor& x, const torch::Tensor& score,
                                double t);
torch::Tensor ode_drift(const Sde& sde, const torch::Tensor& x, const torch::Tensor& score,
                        double t);

/// The network convention of the `sde` model: eps = net(x_t / sqrt(m^2 + s^2), 999 t, y), i.e. the
/// input in VP-equivalent coordinates x~ / sqrt(1 + sigma^2) (the VP state itself for VP; the
/// input scaling of Karras et al. 2022, Table 1, for VE and sub-VP) and the time as a label on
/// the 0..999 scale of the U-Net's timestep embedding (as score_sde does for VP models).
constexpr double kTimeLabelScale = 999.0;

/// The Denoiser's view of such a network on discretize(sde, T)'s schedule: (x, index, y) ->
/// net(x, 999 t_at_index(index), y). The Denoiser already feeds x / sqrt(1 + sigma^2).
diffusion::NetFn index_to_time_net(diffusion::NetFn net, std::shared_ptr<const Sde> sde,
                                   diffusion::NoiseSchedule schedule);

struct SdeLossOptions {
  bool likelihood_weighting = false;  ///< lambda(t) = g(t)^2 instead of s(t)^2
  double class_dropout = 0.1;         ///< CFG label dropout (diffusion::drop_labels)
  int64_t null_label = -1;
};

/// Continuous-time denoising score matching (Song et al. 2021, eq. 7): t ~ U(t_min, 1), x_t = m x0
/// + s z, and lambda(t) || s_theta(x_t, t) + z / s ||^2 with s_theta = -eps / s, i.e. the mean over
/// elements of w(t) || eps_theta - z ||^2 with w = 1 (lambda = s^2, the default) or w = g^2 / s^2
/// (likelihood weighting, Song et al. 2021b, "Maximum Likelihood Training of Score-Based
/// Diffusion Models", Thm. 1). Randomness from the default generator in the order t, z, labels.
torch::Tensor sde_loss(const diffusion::NetFn& net, const Sde& sde, const torch::Tensor& x0,
                       const torch::Tensor& labels, const SdeLossOptions& o);

}  // namespace gm::score
