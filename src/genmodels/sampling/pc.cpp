// Predictor-corrector sampling (Song et al. 2021, "Score-Based Generative Modeling through
// Stochastic Differential Equations", Alg. 2, the VE SDE), run in sigma space where every model
// here is a VE model with score s(x; sigma) = (D(x; sigma) - x) / sigma^2:
//  - predictor from sigma_i to sigma_{i+1}, both with the mean x + (sigma_i^2 - sigma_{i+1}^2)
//    s(x; sigma_i): euler_maruyama (the reverse SDE's Euler-Maruyama step, as Alg. 2) adds
//    sqrt(sigma_i^2 - sigma_{i+1}^2) z, which over-shoots the noise unless sigma_{i+1} / sigma_i
//    is near 1 (the paper runs 1000 levels; the default here too); ancestral (the paper's
//    ancestral sampling predictor for VE, App. F) adds sigma_{i+1} sqrt(1 - sigma_{i+1}^2 /
//    sigma_i^2) z, the DDPM posterior's noise, and stays right on coarse grids;
//  - corrector: `corrector_steps` Langevin steps at sigma_{i+1}, x <- x + e s + sqrt(2 e) z with
//    e = 2 (snr ||z|| / ||s||)^2 (Alg. 4's step size), the norms taken per sample (the paper's
//    code averages them over the batch, which would make a sample depend on its batch);
//  - the last step to sigma = 0 returns D(x; sigma_last) (the denoised mean, Tweedie's formula,
//    as the paper's noise-removal step).
#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/sampling/sigma_samplers.h"

namespace gm::sampling {

namespace {

// Per-row L2 norm, shaped to broadcast against x.
torch::Tensor row_norm(const torch::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  return x.reshape({x.size(0), -1}).norm(2, 1).view(shape);
}

}  // namespace

torch::Tensor sample_pc(torch::Tensor x, const SigmaArgs& a) {
  const SamplerOptions& o = a.o;
  if (!(o.snr > 0.0)) throw Error("sample.snr must be > 0, got " + num(o.snr));
  const bool ancestral = o.predictor == "ancestral";
  if (!ancestral && o.predictor != "euler_maruyama")
    throw Error("unknown sample.predictor '" + o.predictor + "'; valid: euler_maruyama, ancestral");
  if (o.corrector_steps < 0)
    throw Error("sample.corrector_steps must be >= 0, got " + std::to_string(o.corrector_steps));
  const auto& s = a.sigmas;
  const int64_t n = static_cast<int64_t>(s.size()) - 1;
  for (int64_t i = 0; i < n; ++i) {
    if (s[i + 1] <= 0.0) {
      x = a.m(x, s[i]);
    } else {
      const double var = s[i] * s[i] - s[i + 1] * s[i + 1];
      const torch::Tensor score = (a.m(x, s[i]) - x) / (s[i] * s[i]);
      const double noise_std =
          ancestral ? s[i + 1] * std::sqrt(var) / s[i] : std::sqrt(var);  // see the file comment
      x = x + score * var + a.noise.like(x) * (noise_std * o.s_noise);
      for (int64_t j = 0; j < o.corrector_steps; ++j) {
        const torch::Tensor g = (a.m(x, s[i + 1]) - x) / (s[i + 1] * s[i + 1]);
        const torch::Tensor z = a.noise.like(x);
        const torch::Tensor e = 2.0 * (o.snr * row_norm(z) / row_norm(g).clamp_min(1e-30)).square();
        x = x + g * e + z * torch::sqrt(2.0 * e);
      }
    }
    if (a.callback) a.callback(i + 1, n);
  }
  return x;
}

}  // namespace gm::sampling
