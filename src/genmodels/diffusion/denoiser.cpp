// Parameterisation conversions, the guided network wrapper and its sigma-space view (see
// denoiser.h for the papers).
#include "genmodels/diffusion/denoiser.h"

#include <sstream>

#include "genmodels/core/error.h"

namespace gm::diffusion {
namespace {

std::string describe(const torch::Tensor& t) {
  return t.defined() ? c10::str(t.sizes(), " ", t.scalar_type()) : std::string("undefined");
}

// null_embedding (E or 1 x E) as N x E rows; width >= 0 is the E it must match.
torch::Tensor null_rows(const torch::Tensor& null, int64_t width, int64_t n,
                        const torch::TensorOptions& opts) {
  const bool row = null.dim() == 1 || (null.dim() == 2 && null.size(0) == 1);
  if (!null.is_floating_point() || !row || (width >= 0 && null.size(-1) != width)) {
    throw Error("Denoiser: null_embedding is " + describe(null) +
                ", expected a float [E] or [1, E]" +
                (width >= 0 ? " with E = " + std::to_string(width) + " (the embedding's width)"
                            : std::string()) +
                ": the model's \"no conditioning\" embedding, e.g. the empty-prompt features");
  }
  return null.reshape({1, -1}).to(opts).expand({n, null.size(-1)}).contiguous();
}

}  // namespace

Prediction parse_prediction(const std::string& name) {
  if (name == "eps") return Prediction::Eps;
  if (name == "x0") return Prediction::X0;
  if (name == "v") return Prediction::V;
  throw Error("unknown prediction '" + name + "'; valid: eps, x0, v");
}

std::string to_string(Prediction p) {
  switch (p) {
    case Prediction::Eps:
      return "eps";
    case Prediction::X0:
      return "x0";
    case Prediction::V:
      return "v";
  }
  return "?";
}

// Ho et al. 2020, eq. 4 solved for x0.
torch::Tensor eps_to_x0(const torch::Tensor& x_t, const torch::Tensor& eps,
                        const torch::Tensor& abar) {
  return (x_t - torch::sqrt(1.0 - abar) * eps) * torch::rsqrt(abar);
}

// Ho et al. 2020, eq. 4 solved for eps.
torch::Tensor x0_to_eps(const torch::Tensor& x_t, const torch::Tensor& x0,
                        const torch::Tensor& abar) {
  return (x_t - torch::sqrt(abar) * x0) * torch::rsqrt(1.0 - abar);
}

// Salimans & Ho 2022, Sec. 4: eps = alpha v + sigma z with alpha = sqrt(abar), sigma =
// sqrt(1-abar).
torch::Tensor v_to_eps(const torch::Tensor& x_t, const torch::Tensor& v,
                       const torch::Tensor& abar) {
  return torch::sqrt(abar) * v + torch::sqrt(1.0 - abar) * x_t;
}

// Salimans & Ho 2022, Sec. 4 with x0 eliminated via eq. 4.
torch::Tensor eps_to_v(const torch::Tensor& x_t, const torch::Tensor& eps,
                       const torch::Tensor& abar) {
  return (eps - torch::sqrt(1.0 - abar) * x_t) * torch::rsqrt(abar);
}

// Salimans & Ho 2022, Sec. 4: x0 = alpha z - sigma v.
torch::Tensor v_to_x0(const torch::Tensor& x_t, const torch::Tensor& v, const torch::Tensor& abar) {
  return torch::sqrt(abar) * x_t - torch::sqrt(1.0 - abar) * v;
}

// Salimans & Ho 2022, Sec. 4: v = alpha eps - sigma x0.
torch::Tensor velocity(const torch::Tensor& x0, const torch::Tensor& eps,
                       const torch::Tensor& abar) {
  return torch::sqrt(abar) * eps - torch::sqrt(1.0 - abar) * x0;
}

// Song et al. 2021: grad log q(x_t) = -eps / sqrt(1 - abar).
torch::Tensor eps_to_score(const torch::Tensor& eps, const torch::Tensor& abar) {
  return -eps * torch::rsqrt(1.0 - abar);
}

torch::Tensor score_to_eps(const torch::Tensor& score, const torch::Tensor& abar) {
  return -torch::sqrt(1.0 - abar) * score;
}

Denoiser::Denoiser(NetFn net, Prediction prediction, NoiseSchedule schedule, bool learned_variance)
    : net_(std::move(net)),
      prediction_(prediction),
      schedule_(std::move(schedule)),
      learned_variance_(learned_variance) {
  if (!net_) throw Error("Denoiser: the network function is empty; pass a callable");
  if (schedule_.num_steps() < 1) throw Error("Denoiser: empty noise schedule; use make_schedule");
}

const NoiseSchedule& Denoiser::schedule() const { return schedule_; }
Prediction Denoiser::prediction() const { return prediction_; }

torch::Tensor Denoiser::abar_like(const torch::Tensor& x, const torch::Tensor& t) const {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  auto tv = t.dim() == 0 ? t.reshape({1}).expand({x.size(0)}) : t;
  return alpha_bar_at(schedule_, tv).to(x.device(), x.scalar_type()).view(shape);
}

torch::Tensor Denoiser::raw(const torch::Tensor& x, const torch::Tensor& t,
                            const Conditioning& cond) const {
  torch::Tensor out = raw_all(x, t, cond);
  return learned_variance_ ? out.narrow(1, 0, x.size(1)) : out;
}

// Ho & Salimans 2022, eq. 6 (applied to the raw output: every parameterisation is affine in eps
// with the same coefficients for both halves, so guiding raw outputs equals guiding eps).
torch::Tensor Denoiser::guide(const torch::Tensor& cond_out, const torch::Tensor& uncond_out,
                              double w) const {
  if (!learned_variance_) return torch::lerp(uncond_out, cond_out, w);
  const int64_t c = cond_out.size(1) / 2;
  return torch::cat({torch::lerp(uncond_out.narrow(1, 0, c), cond_out.narrow(1, 0, c), w),
                     cond_out.narrow(1, c, c)},
                    1);
}

torch::Tensor Denoiser::raw_all(const torch::Tensor& x, const torch::Tensor& t,
                                const Conditioning& cond) const {
  const int64_t n = x.size(0);
  auto tv = (t.dim() == 0 ? t.reshape({1}).expand({n}) : t).to(x.device(), torch::kFloat);
  if (tv.dim() != 1 || tv.size(0) != n) {
    throw Error("Denoiser: t has shape " + c10::str(t.sizes()) +
                ", expected N = " + std::to_string(n) + " timesteps");
  }
  if (cond.labels.defined() && cond.embedding.defined()) {
    throw Error(
        "Denoiser: Conditioning sets both labels and embedding; the network takes one y, so set "
        "labels for a class-conditional model or embedding for an embedding-conditional one");
  }
  const torch::Tensor out = raw_net(x, tv, cond);
  if (!cond.gradient_guide) return out;
  // Dhariwal & Nichol 2021, eq. 14: eps_hat = eps - sqrt(1 - abar) grad log p(c | x_t). Every
  // parameterisation is affine in eps, so the prediction channels are converted there and back.
  const int64_t c = x.size(1);
  torch::Tensor pred = learned_variance_ ? out.narrow(1, 0, c) : out;
  const torch::Tensor abar = abar_like(x, tv);
  const torch::Tensor sigma = torch::sqrt((1.0 - abar) / abar).flatten();
  const torch::Tensor grad = cond.gradient_guide(x, sigma);
  if (!grad.defined() || grad.sizes() != x.sizes())
    throw Error("Denoiser: the guidance gradient has shape " +
                (grad.defined() ? c10::str(grad.sizes()) : std::string("(none)")) +
                ", expected that of x_t " + c10::str(x.sizes()));
  const torch::Tensor shift = torch::sqrt(1.0 - abar) * grad.to(pred.scalar_type());
  switch (prediction_) {
    case Prediction::Eps:
      pred = pred - shift;
      break;
    case Prediction::X0:
      pred = eps_to_x0(x, x0_to_eps(x, pred, abar) - shift, abar);
      break;
    case Prediction::V:
      pred = eps_to_v(x, v_to_eps(x, pred, abar) - shift, abar);
      break;
  }
  return learned_variance_ ? torch::cat({pred, out.narrow(1, c, c)}, 1) : pred;
}

torch::Tensor Denoiser::raw_net(const torch::Tensor& x, const torch::Tensor& tv,
                                const Conditioning& cond) const {
  const int64_t n = x.size(0);
  if (cond.embedding.defined()) return raw_embedding(x, tv, cond);
  auto long_opts = torch::dtype(torch::kLong).device(x.device());
  if (!cond.labels.defined()) {
    torch::Tensor y;
    if (cond.null_label >= 0) {
      y = torch::full({n}, cond.null_label, long_opts);
    } else if (cond.null_embedding.defined()) {
      y = null_rows(cond.null_embedding, -1, n, cond.null_embedding.options().device(x.device()));
    }
    return net_(x, tv, y);
  }
  if (cond.labels.dim() != 1 || cond.labels.size(0) != n) {
    throw Error("Denoiser: labels have shape " + c10::str(cond.labels.sizes()) +
                ", expected N = " + std::to_string(n) + " int64 labels");
  }
  auto labels = cond.labels.to(x.device(), torch::kLong);
  if (cond.guidance == 1.0) return net_(x, tv, labels);
  if (cond.null_label < 0) {
    throw Error(
        "Denoiser: guidance = " + std::to_string(cond.guidance) +
        " needs Conditioning::null_label >= 0 (the model's null class, usually num_classes)");
  }
  auto out = net_(torch::cat({x, x}, 0), torch::cat({tv, tv}, 0),
                  torch::cat({labels, torch::full({n}, cond.null_label, long_opts)}, 0));
  return guide(out.narrow(0, 0, n), out.narrow(0, n, n), cond.guidance);
}

// Ho & Salimans 2022, eq. 6 with the null embedding as the unconditional half.
torch::Tensor Denoiser::raw_embedding(const torch::Tensor& x, const torch::Tensor& tv,
                                      const Conditioning& cond) const {
  const int64_t n = x.size(0);
  const auto& e = cond.embedding;
  if (!e.is_floating_point() || e.dim() != 2 || e.size(0) != n) {
    throw Error("Denoiser: embedding is " + describe(e) +
                ", expected a float N x E tensor with N = " + std::to_string(n) +
                " (one row per sample: expand a shared embedding to N rows; class labels go in "
                "Conditioning::labels)");
  }
  auto emb = e.to(x.device());
  if (cond.guidance == 1.0) return net_(x, tv, emb);
  if (!cond.null_embedding.defined()) {
    throw Error("Denoiser: guidance = " + num(cond.guidance) +
                " with an embedding needs Conditioning::null_embedding ([E] or [1, E], the "
                "model's \"no conditioning\" embedding, e.g. the empty-prompt features)");
  }
  auto null = null_rows(cond.null_embedding, emb.size(1), n, emb.options());
  auto out = net_(torch::cat({x, x}, 0), torch::cat({tv, tv}, 0), torch::cat({emb, null}, 0));
  return guide(out.narrow(0, 0, n), out.narrow(0, n, n), cond.guidance);
}

torch::Tensor Denoiser::eps(const torch::Tensor& x, const torch::Tensor& t,
                            const Conditioning& cond) const {
  auto out = raw(x, t, cond);
  switch (prediction_) {
    case Prediction::Eps:
      return out;
    case Prediction::X0:
      return x0_to_eps(x, out, abar_like(x, t));
    case Prediction::V:
      return v_to_eps(x, out, abar_like(x, t));
  }
  return out;
}

Denoiser::Prediction2 Denoiser::predict(const torch::Tensor& x, const torch::Tensor& t,
                                        const Conditioning& cond, bool clip_x0) const {
  auto out = raw_all(x, t, cond);
  Prediction2 p;
  if (learned_variance_) {
    const int64_t c = x.size(1);
    if (out.size(1) != 2 * c)
      throw Error("Denoiser: a learned-variance network must return 2 x " + std::to_string(c) +
                  " channels, got " + std::to_string(out.size(1)));
    p.v = (out.narrow(1, c, c) + 1.0) * 0.5;
    out = out.narrow(1, 0, c);
  }
  auto abar = abar_like(x, t);
  switch (prediction_) {
    case Prediction::Eps:
      p.eps = out;
      p.x0 = eps_to_x0(x, out, abar);
      break;
    case Prediction::X0:
      p.x0 = out;
      p.eps = x0_to_eps(x, out, abar);
      break;
    case Prediction::V:
      p.x0 = v_to_x0(x, out, abar);
      p.eps = v_to_eps(x, out, abar);
      break;
  }
  if (clip_x0) {
    p.x0 = p.x0.clamp(-1.0, 1.0);
    p.eps = x0_to_eps(x, p.x0, abar);
  }
  return p;
}

// Karras et al. 2022, Sec. 2 / Table 1 (VP): x_t = x / sqrt(1 + sigma^2) has abar = 1 / (1 +
// sigma^2), so predict() at t = t_at_sigma(sigma) gives D(x; sigma) and eps = (x - D) / sigma.
Denoiser::Prediction2 Denoiser::denoise2(const torch::Tensor& x, const torch::Tensor& sigma,
                                         const Conditioning& cond, bool clip_x0) const {
  if (!x.defined() || x.dim() < 1) throw Error("Denoiser::denoise: x must be an N x ... tensor");
  const int64_t n = x.size(0);
  if (!sigma.defined() || !sigma.is_floating_point() ||
      !(sigma.dim() == 0 || (sigma.dim() == 1 && sigma.size(0) == n))) {
    throw Error("Denoiser::denoise: sigma is " + describe(sigma) +
                ", expected a float tensor of N = " + std::to_string(n) +
                " noise levels, or a 0-d one for all samples");
  }
  auto s64 =
      (sigma.dim() == 0 ? sigma.reshape({1}).expand({n}) : sigma).to(torch::kCPU, torch::kDouble);
  if (n > 0) {
    constexpr double kSlack = 1e-5;
    const double lo = sigma_min(), hi = sigma_max();
    const double s_lo = s64.min().item<double>(), s_hi = s64.max().item<double>();
    if (!(s_lo >= lo * (1.0 - kSlack)) || !(s_hi <= hi * (1.0 + kSlack))) {
      throw Error("Denoiser::denoise: sigma = " + num(s_lo >= lo * (1.0 - kSlack) ? s_hi : s_lo) +
                  " outside [sigma_min, sigma_max] = [" + num(lo) + ", " + num(hi) +
                  "] of schedule '" + schedule_.name +
                  "'; clamp the sigmas to sigma_min()/sigma_max() (a final step to sigma = 0 is "
                  "x = denoise(x, sigma_last))");
    }
  }
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = n;
  auto c_in = torch::rsqrt(1.0 + s64 * s64).to(x.device(), x.scalar_type()).view(shape);
  return predict(x * c_in, t_at_sigma(schedule_, s64).to(x.device()), cond, clip_x0);
}

torch::Tensor Denoiser::denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                                const Conditioning& cond, bool clip_x0) const {
  return denoise2(x, sigma, cond, clip_x0).x0;
}

double Denoiser::sigma_min() const { return diffusion::sigma_min(schedule_); }
double Denoiser::sigma_max() const { return diffusion::sigma_max(schedule_); }

torch::Tensor Denoiser::x0(const torch::Tensor& x, const torch::Tensor& t,
                           const Conditioning& cond) const {
  auto out = raw(x, t, cond);
  switch (prediction_) {
    case Prediction::Eps:
      return eps_to_x0(x, out, abar_like(x, t));
    case Prediction::X0:
      return out;
    case Prediction::V:
      return v_to_x0(x, out, abar_like(x, t));
  }
  return out;
}

torch::Tensor Denoiser::score(const torch::Tensor& x, const torch::Tensor& t,
                              const Conditioning& cond) const {
  return eps_to_score(eps(x, t, cond), abar_like(x, t));
}

}  // namespace gm::diffusion
