// DPM-Solver++ (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
// Probabilistic Models") in sigma space, where alpha = 1 and lambda = -log sigma: the data
// prediction D is integrated exactly against the linear part, x_next = (sigma_next / sigma) x +
// (1 - e^{-h}) D with h = lambda_next - lambda (the first-order step, = DDIM), and corrected to
// second order by a multistep difference (2M, Alg. 2) or a midpoint evaluation (2S). A step to
// sigma = 0 is x = D (the first-order step's limit).
#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/sampling/sigma_samplers.h"

namespace gm::sampling {

namespace {

// SDE-DPM-Solver++(2M) (Lu et al. 2022, App.) with noise scale eta:
// x_next = (sigma_next / sigma) e^{-eta h} x + (1 - e^{-(1+eta) h}) D + 1/2 (1 - e^{-(1+eta) h})
// (D - D_prev) / r + sigma_next sqrt(1 - e^{-2 eta h}) z, r = h_prev / h, the first step first
// order. At eta = 0 this is exactly DPM-Solver++(2M) (Alg. 2): x_next = (sigma_next / sigma) x +
// (1 - e^{-h}) ((1 + 1/(2r)) D - 1/(2r) D_prev).
torch::Tensor dpmpp_2m(torch::Tensor x, const SigmaArgs& a, double eta) {
  if (!(eta >= 0.0)) throw Error("sample.ancestral_eta must be >= 0, got " + num(eta));
  const auto& s = a.sigmas;
  const int64_t n = static_cast<int64_t>(s.size()) - 1;
  torch::Tensor old;
  double h_last = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const torch::Tensor den = a.m(x, s[i]);
    if (s[i + 1] <= 0.0) {
      x = den;
    } else {
      const double h = std::log(s[i] / s[i + 1]), eh = eta * h;
      const double c = -std::expm1(-h - eh);
      x = x * (s[i + 1] / s[i] * std::exp(-eh)) + den * c;
      if (old.defined()) x = x + (den - old) * (0.5 * c * h / h_last);
      if (eta > 0.0)
        x = x + a.noise.like(x) * (s[i + 1] * std::sqrt(-std::expm1(-2.0 * eh)) * a.o.s_noise);
      h_last = h;
    }
    old = den;
    if (a.callback) a.callback(i + 1, n);
  }
  return x;
}

}  // namespace

torch::Tensor sample_dpmpp_2m(torch::Tensor x, const SigmaArgs& a) {
  return dpmpp_2m(std::move(x), a, 0.0);
}

torch::Tensor sample_dpmpp_2m_sde(torch::Tensor x, const SigmaArgs& a) {
  return dpmpp_2m(std::move(x), a, a.o.ancestral_eta);
}

// DPM-Solver++(2S) (Lu et al. 2022, Alg. 1 with r = 1/2) from sigma to the ancestral sigma_down,
// then sigma_up noise (ancestral_step); the last step to 0 is x = D.
torch::Tensor sample_dpmpp_2s_ancestral(torch::Tensor x, const SigmaArgs& a) {
  const auto& s = a.sigmas;
  const int64_t n = static_cast<int64_t>(s.size()) - 1;
  for (int64_t i = 0; i < n; ++i) {
    const torch::Tensor den = a.m(x, s[i]);
    const AncestralStep st = ancestral_step(s[i], s[i + 1], a.o.ancestral_eta);
    if (st.down <= 0.0) {
      x = den;
    } else {
      const double h = std::log(s[i] / st.down);
      const double s_mid = s[i] * std::exp(-0.5 * h);
      const torch::Tensor x2 = x * (s_mid / s[i]) - den * std::expm1(-0.5 * h);
      const torch::Tensor den2 = a.m.clamped(x2, s_mid);
      x = x * (st.down / s[i]) - den2 * std::expm1(-h);
    }
    if (st.up > 0.0) x = x + a.noise.like(x) * (st.up * a.o.s_noise);
    if (a.callback) a.callback(i + 1, n);
  }
  return x;
}

}  // namespace gm::sampling
