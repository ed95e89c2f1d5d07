// The sub-VP SDE (Song et al. 2021, eq. 34): the VP drift with diffusion g(t)^2 = beta(t) (1 -
// exp(-2 b0 t - (b1 - b0) t^2)) = beta(t) (1 - m^4); kernel N(m x0, (1 - m^2)^2 I), whose variance
// is below the VP one at every t (hence the name), m(t) as for VP.
#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/score/sde.h"

namespace gm::score {
namespace {

class SubVpSde : public Sde {
 public:
  SubVpSde(double b0, double b1) : b0_(b0), b1_(b1) {}
  std::string name() const override { return "subvp"; }
  double mean_coef(double t) const override { return std::exp(log_mean(t)); }
  double std(double t) const override { return -std::expm1(2.0 * log_mean(t)); }
  double drift_coef(double t) const override { return -0.5 * beta(t); }
  double diffusion(double t) const override {
    return std::sqrt(beta(t) * -std::expm1(4.0 * log_mean(t)));
  }
  // sigma = (1 - m^2) / m, so m = 2 / (sigma + sqrt(sigma^2 + 4)) (the positive root).
  double t_at_sigma(double sigma) const override {
    const double m = 2.0 / (sigma + std::sqrt(sigma * sigma + 4.0));
    return vp_t_at_log_mean(-std::log(m), b0_, b1_);
  }

 private:
  double beta(double t) const { return b0_ + t * (b1_ - b0_); }
  double log_mean(double t) const { return -0.25 * t * t * (b1_ - b0_) - 0.5 * t * b0_; }
  double b0_, b1_;
};

}  // namespace

std::unique_ptr<Sde> subvp_sde(double beta_min, double beta_max) {
  if (!(beta_min >= 0.0) || !(beta_max > 0.0) || !(beta_max >= beta_min))
    throw Error("sde.beta_min = " + num(beta_min) + ", sde.beta_max = " + num(beta_max) +
                ": the sub-VP SDE needs 0 <= beta_min <= beta_max, beta_max > 0 (e.g. 0.1 and 20)");
  return std::make_unique<SubVpSde>(beta_min, beta_max);
}

}  // namespace gm::score
