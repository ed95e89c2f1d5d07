// The variance-preserving SDE (Song et al. 2021, eq. 32-33; the continuous limit of DDPM, Ho et
// al. 2020): dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw with beta(t) = b0 + t (b1 - b0); kernel
// N(m x0, (1 - m^2) I), log m(t) = -t^2 (b1 - b0) / 4 - t b0 / 2.
#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/score/sde.h"

namespace gm::score {
namespace {

class VpSde : public Sde {
 public:
  VpSde(double b0, double b1) : b0_(b0), b1_(b1) {}
  std::string name() const override { return "vp"; }
  double mean_coef(double t) const override { return std::exp(log_mean(t)); }
  double std(double t) const override { return std::sqrt(-std::expm1(2.0 * log_mean(t))); }
  double drift_coef(double t) const override { return -0.5 * beta(t); }
  double diffusion(double t) const override { return std::sqrt(beta(t)); }
  // m^2 = 1 / (1 + sigma^2), so -log m = log(1 + sigma^2) / 2.
  double t_at_sigma(double sigma) const override {
    return vp_t_at_log_mean(0.5 * std::log1p(sigma * sigma), b0_, b1_);
  }

 private:
  double beta(double t) const { return b0_ + t * (b1_ - b0_); }
  double log_mean(double t) const { return -0.25 * t * t * (b1_ - b0_) - 0.5 * t * b0_; }
  double b0_, b1_;
};

}  // namespace

std::unique_ptr<Sde> vp_sde(double beta_min, double beta_max) {
  if (!(beta_min >= 0.0) || !(beta_max > 0.0) || !(beta_max >= beta_min))
    throw Error("sde.beta_min = " + num(beta_min) + ", sde.beta_max = " + num(beta_max) +
                ": the VP SDE needs 0 <= beta_min <= beta_max, beta_max > 0 (e.g. 0.1 and 20)");
  return std::make_unique<VpSde>(beta_min, beta_max);
}

}  // namespace gm::score
