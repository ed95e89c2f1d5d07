// Euler and Heun on the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma with optional
// churn (Karras et al. 2022, Alg. 1-2), and Euler ancestral.
//
// Heun's correction comes in two forms. With r = sigma_next / sigma, D1 = D(x; sigma) and D2 =
// D(x_euler; sigma_next), both are r x + (1 - r) D1 + w (D2 - D1) / 2 and differ only in w:
//  - karras (Alg. 2 verbatim, the trapezoid over sigma): w = 1/r - 1;
//  - exponential (the default, the trapezoid over the integral of the exponential-integrator
//    form x(sigma_next) = r x + sigma_next int_{sigma_next}^{sigma} D / s^2 ds, i.e. DPM-Solver-2
//    of Lu et al. 2022 with its second evaluation at the step's end): w = 1 - r.
// Both are second order as r -> 1 (w = 1 - r + O((1 - r)^2)). On a step with r << 1 -- the first
// step from a cosine schedule's sigma_max ~ 2e4, or the Karras grid's last ones into sigma_min --
// the karras form multiplies the change of D by 1/r (up to ~1000), which blew up real samples
// (FID 183-673 at 10 steps); the exponential weight stays in [0, 1].

#include <algorithm>
#include <cmath>
#include <limits>

#include "genmodels/core/error.h"
#include "genmodels/sampling/sigma_samplers.h"

namespace gm::sampling {

AncestralStep ancestral_step(double sigma, double sigma_next, double eta) {
  if (sigma_next <= 0.0 || eta <= 0.0) return {sigma_next, 0.0};
  const double up = std::min(
      sigma_next, eta * std::sqrt(sigma_next * sigma_next *
                                  (sigma * sigma - sigma_next * sigma_next) / (sigma * sigma)));
  return {std::sqrt(std::max(sigma_next * sigma_next - up * up, 0.0)), up};
}

namespace {

void check_churn(const SamplerOptions& o) {
  if (!(o.s_churn >= 0.0)) throw Error("sample.s_churn must be >= 0, got " + num(o.s_churn));
  if (!(o.s_noise >= 0.0)) throw Error("sample.s_noise must be >= 0, got " + num(o.s_noise));
}

// Karras et al. 2022, Alg. 2: Euler (heun = false) or Heun (the correction at sigma_next > 0, in
// the form sample.heun names; the last step to 0 stays Euler), with churn gamma_i = min(S_churn /
// N, sqrt(2) - 1) for sigma in [S_tmin, S_tmax] (lines 4-6). The churned sigma_hat is kept inside
// the trained range.
torch::Tensor karras_sampler(torch::Tensor x, const SigmaArgs& a, bool heun) {
  const SamplerOptions& o = a.o;
  check_churn(o);
  const bool karras_form = o.heun == "karras";
  if (heun && !karras_form && o.heun != "exponential")
    throw Error("unknown sample.heun '" + o.heun + "'; valid: exponential, karras");
  const auto& s = a.sigmas;
  const int64_t n = static_cast<int64_t>(s.size()) - 1;
  const double tmax = o.s_tmax > 0.0 ? o.s_tmax : std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    const double gamma = s[i] >= o.s_tmin && s[i] <= tmax
                             ? std::min(o.s_churn / static_cast<double>(n), std::sqrt(2.0) - 1.0)
                             : 0.0;
    const double s_hat = std::min(s[i] * (1.0 + gamma), a.m.sigma_max());
    if (s_hat > s[i])  // line 6: raise the noise level to sigma_hat
      x = x + a.noise.like(x) * (o.s_noise * std::sqrt(s_hat * s_hat - s[i] * s[i]));
    const torch::Tensor d = (x - a.m(x, s_hat)) / s_hat;  // line 7
    const double dt = s[i + 1] - s_hat;
    torch::Tensor x_next = x + d * dt;  // line 8
    if (heun && s[i + 1] > 0.0) {       // lines 9-11
      const torch::Tensor d2 = (x_next - a.m(x_next, s[i + 1])) / s[i + 1];
      if (karras_form) {
        x_next = x + (d + d2) * (0.5 * dt);
      } else {  // r x + (1 - r)(D1 + D2) / 2, with D = x - sigma d at each end
        const double r = s[i + 1] / s_hat;
        x_next = x * r + ((x - d * s_hat) + (x_next - d2 * s[i + 1])) * (0.5 * (1.0 - r));
      }
    }
    x = x_next;
    if (a.callback) a.callback(i + 1, n);
  }
  return x;
}

}  // namespace

torch::Tensor sample_euler(torch::Tensor x, const SigmaArgs& a) {
  return karras_sampler(std::move(x), a, false);
}

torch::Tensor sample_heun(torch::Tensor x, const SigmaArgs& a) {
  return karras_sampler(std::move(x), a, true);
}

// An Euler step to sigma_down, then fresh noise of std sigma_up (ancestral_step): with eta = 1
// the DDPM posterior q(x_{sigma_next} | x_sigma, x0 = D) in sigma space.
torch::Tensor sample_euler_ancestral(torch::Tensor x, const SigmaArgs& a) {
  check_churn(a.o);
  const auto& s = a.sigmas;
  const int64_t n = static_cast<int64_t>(s.size()) - 1;
  for (int64_t i = 0; i < n; ++i) {
    const AncestralStep st = ancestral_step(s[i], s[i + 1], a.o.ancestral_eta);
    const torch::Tensor d = (x - a.m(x, s[i])) / s[i];
    x = x + d * (st.down - s[i]);
    if (st.up > 0.0) x = x + a.noise.like(x) * (st.up * a.o.s_noise);
    if (a.callback) a.callback(i + 1, n);
  }
  return x;
}

}  // namespace gm::sampling
