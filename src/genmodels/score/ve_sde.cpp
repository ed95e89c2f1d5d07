// The variance-exploding SDE (Song et al. 2021, eq. 30; the continuous limit of NCSN's noise
// levels, Song & Ermon 2019): dx = sqrt(d[sigma^2(t)]/dt) dw with sigma(t) = sigma_min (sigma_max /
// sigma_min)^t, so g(t) = sigma(t) sqrt(2 log(sigma_max / sigma_min)); kernel N(x0, sigma(t)^2 I).
#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/score/sde.h"

namespace gm::score {
namespace {

class VeSde : public Sde {
 public:
  VeSde(double lo, double hi) : lo_(lo), hi_(hi), log_ratio_(std::log(hi / lo)) {}
  std::string name() const override { return "ve"; }
  double mean_coef(double) const override { return 1.0; }
  double std(double t) const override { return lo_ * std::exp(t * log_ratio_); }
  double drift_coef(double) const override { return 0.0; }
  double diffusion(double t) const override { return std(t) * std::sqrt(2.0 * log_ratio_); }
  double t_at_sigma(double sigma) const override {
    if (!(sigma > lo_)) return 0.0;
    return std::min(1.0, std::log(sigma / lo_) / log_ratio_);
  }

 private:
  double lo_, hi_, log_ratio_;
};

}  // namespace

std::unique_ptr<Sde> ve_sde(double sigma_min, double sigma_max) {
  if (!(sigma_min > 0.0) || !(sigma_max > sigma_min) || !std::isfinite(sigma_max))
    throw Error("sde.sigma_min = " + num(sigma_min) + ", sde.sigma_max = " + num(sigma_max) +
                ": the VE SDE needs 0 < sigma_min < sigma_max (e.g. 0.01 and 50)");
  return std::make_unique<VeSde>(sigma_min, sigma_max);
}

}  // namespace gm::score
