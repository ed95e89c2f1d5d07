// The one place for parameterisation conversions and the network wrapper samplers call.
// x_t = sqrt(abar) x0 + sqrt(1-abar) eps (Ho et al. 2020 eq. 4); v = sqrt(abar) eps - sqrt(1-abar)
// x0 (Salimans & Ho 2022, "Progressive Distillation", Sec. 4); score = -eps / sqrt(1-abar) (Song et
// al. 2021, "Score-Based Generative Modeling through SDEs", Sec. 3/App. B); classifier-free
// guidance (Ho & Salimans 2022, eq. 6) over class labels or embeddings; the continuous-noise
// denoiser D(x; sigma) of Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based
// Generative Models", Sec. 2, Table 1 VP column) on top of the discrete VP network.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>

#include "genmodels/diffusion/schedule.h"

namespace gm::diffusion {

enum class Prediction { Eps, X0, V };
Prediction parse_prediction(const std::string& name);  // "eps" | "x0" | "v"
std::string to_string(Prediction p);

// Conversions; abar is a float tensor broadcastable to x (e.g. N x 1 x 1 x 1).
/// x0 = (x_t - sqrt(1-abar) eps) / sqrt(abar)  (Ho et al. 2020 eq. 4 solved for x0)
torch::Tensor eps_to_x0(const torch::Tensor& x_t, const torch::Tensor& eps,
                        const torch::Tensor& abar);
/// eps = (x_t - sqrt(abar) x0) / sqrt(1-abar)
torch::Tensor x0_to_eps(const torch::Tensor& x_t, const torch::Tensor& x0,
                        const torch::Tensor& abar);
/// eps = sqrt(abar) v + sqrt(1-abar) x_t  (Salimans & Ho 2022, Sec. 4)
torch::Tensor v_to_eps(const torch::Tensor& x_t, const torch::Tensor& v, const torch::Tensor& abar);
/// v = (eps - sqrt(1-abar) x_t) / sqrt(abar) = sqrt(abar) eps - sqrt(1-abar) x0
torch::Tensor eps_to_v(const torch::Tensor& x_t, const torch::Tensor& eps,
                       const torch::Tensor& abar);
/// x0 = sqrt(abar) x_t - sqrt(1-abar) v  (Salimans & Ho 2022, Sec. 4)
torch::Tensor v_to_x0(const torch::Tensor& x_t, const torch::Tensor& v, const torch::Tensor& abar);
/// The v target from clean data and noise: v = sqrt(abar) eps - sqrt(1-abar) x0.
torch::Tensor velocity(const torch::Tensor& x0, const torch::Tensor& eps,
                       const torch::Tensor& abar);
/// score = grad log q(x_t) = -eps / sqrt(1-abar)
torch::Tensor eps_to_score(const torch::Tensor& eps, const torch::Tensor& abar);
/// eps = -sqrt(1-abar) score
torch::Tensor score_to_eps(const torch::Tensor& score, const torch::Tensor& abar);

/// Network call: (x_t, t float N, y) -> raw output in `prediction` parameterisation; y is int64 N
/// class labels, a float N x E embedding (e.g. text features), or undefined.
using NetFn =
    std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>;

/// What the network is conditioned on: labels OR embedding (setting both is an error), or
/// neither for unconditional sampling.
struct Conditioning {
  torch::Tensor labels;     ///< N int64 class labels, or undefined
  double guidance = 1.0;    ///< classifier-free guidance weight w (1 = plain conditional)
  int64_t null_label = -1;  ///< label of the "no class" embedding; needed when guidance != 1
  torch::Tensor embedding;  ///< N x E float conditioning embedding, or undefined
  /// E or 1 x E "no conditioning" embedding; needed when embedding is set and guidance != 1.
  torch::Tensor null_embedding;
  /// Gradient guidance (classifier guidance, Dhariwal & Nichol 2021, Alg. 2 / eq. 14; CLIP
  /// guidance, Nichol et al. 2022, Sec. 2.4): (x_t, sigma N) -> s * grad_{x_t} log p(c | x_t),
  /// shaped as x_t, for the variance-preserving state x_t at noise level sigma = sqrt((1 - abar)
  /// / abar). The predicted eps becomes eps - sqrt(1 - abar) * that, after classifier-free
  /// guidance; every sampler sees the guided prediction.
  std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)> gradient_guide;
};

/// Wraps a network + its parameterisation + schedule. Samplers only call eps()/x0()/score().
/// learned_variance: the network returns 2C channels, the prediction and v in [-1, 1] whose
/// (v + 1) / 2 interpolates log beta and log beta-tilde (Nichol & Dhariwal 2021, eq. 15); every
/// method below sees only the prediction, predict() also returns v.
class Denoiser {
 public:
  Denoiser(NetFn net, Prediction prediction, NoiseSchedule schedule, bool learned_variance = false);
  /// eps prediction at integer-or-fractional timesteps t (float N, or a 0-d tensor for all);
  /// classifier-free guidance (Ho & Salimans 2022): eps = eps_uncond + w (eps_cond - eps_uncond)
  /// when cond.labels (or cond.embedding) is defined and guidance != 1, both halves batched in
  /// one call with null_label (or null_embedding expanded to N) as the unconditional half;
  /// guidance == 1 -> conditional only; neither defined -> unconditional with y = the null label
  /// if null_label >= 0, else null_embedding expanded to N x E if defined, else undefined.
  torch::Tensor eps(const torch::Tensor& x, const torch::Tensor& t,
                    const Conditioning& cond = {}) const;
  torch::Tensor x0(const torch::Tensor& x, const torch::Tensor& t,
                   const Conditioning& cond = {}) const;
  torch::Tensor score(const torch::Tensor& x, const torch::Tensor& t,
                      const Conditioning& cond = {}) const;
  /// x0 and eps from ONE network call, each by its numerically stable conversion (for v:
  /// x0 = sqrt(abar) x - sqrt(1-abar) v directly, not through eps / sqrt(abar)); optionally clip
  /// x0 to [-1, 1] and recompute eps from the clipped x0 (Ho et al. 2020, Sec. 3.3).
  struct Prediction2 {
    torch::Tensor x0, eps;
    torch::Tensor v;  ///< learned variance: the interpolation fraction (v + 1) / 2 in [0, 1]
  };
  Prediction2 predict(const torch::Tensor& x, const torch::Tensor& t, const Conditioning& cond = {},
                      bool clip_x0 = false) const;

  /// Karras et al. 2022, Sec. 2: the x0 estimate D(x; sigma) for x = x0 + sigma n in sigma (VE)
  /// space, via the VP state x_t = x / sqrt(1 + sigma^2) at t = t_at_sigma(sigma) and predict().
  /// sigma is float N or 0-d, each in [sigma_min(), sigma_max()] (1e-5 relative slack; errors
  /// outside: the discrete network has no timestep there).
  torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                        const Conditioning& cond = {}, bool clip_x0 = false) const;
  /// D(x; sigma) and eps = (x - D) / sigma (the network's eps) from one network call.
  Prediction2 denoise2(const torch::Tensor& x, const torch::Tensor& sigma,
                       const Conditioning& cond = {}, bool clip_x0 = false) const;
  /// The schedule's sigma range (Karras et al. 2022, Table 1 VP): sigma at t = 0 and t = T-1.
  double sigma_min() const;
  double sigma_max() const;
  const NoiseSchedule& schedule() const;
  Prediction prediction() const;
  bool learned_variance() const { return learned_variance_; }

  /// abar(t) shaped N x 1 x ... to broadcast against x (x's dtype and device).
  torch::Tensor abar_like(const torch::Tensor& x, const torch::Tensor& t) const;
  /// Raw network output with guidance applied (in the network's parameterisation; without the
  /// variance channels of a learned-variance network).
  torch::Tensor raw(const torch::Tensor& x, const torch::Tensor& t,
                    const Conditioning& cond = {}) const;

 private:
  // Every output channel; guidance mixes the prediction channels, the variance channels are the
  // conditional half's (as GLIDE, Nichol et al. 2022, does).
  torch::Tensor raw_all(const torch::Tensor& x, const torch::Tensor& t,
                        const Conditioning& cond) const;
  // raw_all before gradient guidance.
  torch::Tensor raw_net(const torch::Tensor& x, const torch::Tensor& tv,
                        const Conditioning& cond) const;
  torch::Tensor raw_embedding(const torch::Tensor& x, const torch::Tensor& tv,
                              const Conditioning& cond) const;
  torch::Tensor guide(const torch::Tensor& cond_out, const torch::Tensor& uncond_out,
                      double w) const;
  NetFn net_;
  Prediction prediction_;
  NoiseSchedule schedule_;
  bool learned_variance_ = false;
};

}  // namespace gm::diffusion
