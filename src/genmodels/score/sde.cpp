// SDE factory, the discrete VP-equivalent schedule and the reverse drifts (see sde.h).
#include "genmodels/score/sde.h"

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/diffusion/loss.h"

namespace gm::score {

double Sde::marginal_std(double t, double data_std) const {
  const double m = mean_coef(t), s = std(t);
  return std::sqrt(m * m * data_std * data_std + s * s);
}

std::vector<std::string> sde_names() { return {"ve", "vp", "subvp"}; }

std::unique_ptr<Sde> make_sde(const std::string& name, const SdeOptions& o) {
  if (name == "ve") return ve_sde(o.sigma_min, o.sigma_max);
  if (name == "vp") return vp_sde(o.beta_min, o.beta_max);
  if (name == "subvp") return subvp_sde(o.beta_min, o.beta_max);
  throw Error("model.sde = '" + name + "' is not an SDE; valid: ve, vp, subvp");
}

// Positive root of a t^2 + b t - L = 0 with a = (b1 - b0) / 4, b = b0 / 2, in the cancellation-
// free form 2L / (b + sqrt(b^2 + 4 a L)).
double vp_t_at_log_mean(double L, double beta_min, double beta_max) {
  if (!(L > 0.0)) return 0.0;
  const double a = 0.25 * (beta_max - beta_min), b = 0.5 * beta_min;
  const double t = 2.0 * L / (b + std::sqrt(b * b + 4.0 * a * L));
  return std::min(1.0, t);
}

diffusion::NoiseSchedule discretize(const Sde& sde, int64_t T) {
  if (T < 2) throw Error("discretize: T = " + std::to_string(T) + " must be >= 2");
  std::vector<double> sigmas(T);
  const double t0 = sde.t_min();
  for (int64_t i = 0; i < T; ++i)
    sigmas[i] = sde.sigma(t0 + (1.0 - t0) * static_cast<double>(i) / static_cast<double>(T - 1));
  return diffusion::schedule_from_sigmas(sigmas, "sde:" + sde.name());
}

torch::Tensor t_at_index(const Sde& sde, const diffusion::NoiseSchedule& s,
                         const torch::Tensor& index) {
  torch::Tensor sigma = diffusion::sigma_at(s, index.to(torch::kCPU)).contiguous();
  torch::Tensor out = torch::empty_like(sigma);
  const auto* in = sigma.data_ptr<double>();
  auto* o = out.data_ptr<double>();
  for (int64_t i = 0; i < sigma.numel(); ++i) o[i] = sde.t_at_sigma(in[i]);
  return out;
}

// Song et al. 2021, eq. 6 with f(x, t) = f(t) x.
torch::Tensor reverse_sde_drift(const Sde& sde, const torch::Tensor& x, const torch::Tensor& score,
                                double t) {
  const double g = sde.diffusion(t);
  return sde.drift_coef(t) * x - g * g * score;
}

// Song et al. 2021, eq. 13.
torch::Tensor ode_drift(const Sde& sde, const torch::Tensor& x, const torch::Tensor& score,
                        double t) {
  const double g = sde.diffusion(t);
  return sde.drift_coef(t) * x - 0.5 * g * g * score;
}

diffusion::NetFn index_to_time_net(diffusion::NetFn net, std::shared_ptr<const Sde> sde,
                                   diffusion::NoiseSchedule schedule) {
  return [net = std::move(net), sde = std::move(sde), schedule = std::move(schedule)](
             const torch::Tensor& x, const torch::Tensor& index, const torch::Tensor& y) {
    const torch::Tensor t = t_at_index(*sde, schedule, index) * kTimeLabelScale;
    return net(x, t.to(x.device(), torch::kFloat), y);
  };
}

// Song et al. 2021, eq. 7 with the Gaussian kernel's score -z / s.
torch::Tensor sde_loss(const diffusion::NetFn& net, const Sde& sde, const torch::Tensor& x0,
                       const torch::Tensor& labels, const SdeLossOptions& o) {
  if (!x0.defined() || x0.dim() < 1 || x0.size(0) < 1)
    throw Error("sde_loss: x0 must be a non-empty batch (N x ...)");
  const int64_t n = x0.size(0);
  const double t0 = sde.t_min();
  const torch::Tensor u = torch::rand({n}, torch::kDouble);
  const torch::Tensor z = torch::randn_like(x0);
  const torch::Tensor y =
      diffusion::drop_labels(labels, n, o.class_dropout, o.null_label, x0.device());
  torch::Tensor t = t0 + (1.0 - t0) * u;
  torch::Tensor m = torch::empty({n}, torch::kDouble), s = torch::empty_like(m),
                w = torch::ones_like(m);
  for (int64_t i = 0; i < n; ++i) {
    const double ti = t[i].item<double>();
    m[i] = sde.mean_coef(ti);
    s[i] = sde.std(ti);
    if (o.likelihood_weighting) {
      const double g = sde.diffusion(ti), si = s[i].item<double>();
      w[i] = g * g / (si * si);
    }
  }
  std::vector<int64_t> shape(x0.dim(), 1);
  shape[0] = n;
  auto col = [&](const torch::Tensor& v) {
    return v.to(x0.device(), x0.scalar_type()).view(shape);
  };
  const torch::Tensor x_t = col(m) * x0 + col(s) * z;
  const torch::Tensor x_in = x_t * col(torch::rsqrt(m * m + s * s));
  const torch::Tensor eps = net(x_in, (t * kTimeLabelScale).to(x0.device(), torch::kFloat), y);
  if (!eps.sizes().equals(z.sizes()))
    throw Error("sde_loss: network output shape " + c10::str(eps.sizes()) +
                " differs from the data's " + c10::str(z.sizes()) + "; check out_channels");
  const torch::Tensor per = (eps - z).square().reshape({n, -1}).mean(1);
  return (per * w.to(per.device(), per.scalar_type())).mean();
}

}  // namespace gm::score
