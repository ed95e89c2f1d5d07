// Simple diffusion loss (Ho et al. 2020 eq. 14; v target Salimans & Ho 2022; CFG dropout
// Ho & Salimans 2022 Alg. 1).
#include "genmodels/diffusion/loss.h"

#include "genmodels/core/error.h"
#include "genmodels/diffusion/vlb.h"

namespace gm::diffusion {

torch::Tensor drop_labels(const torch::Tensor& labels, int64_t n, double p, int64_t null_label,
                          const torch::Device& device) {
  if (!labels.defined()) return {};
  if (!(p >= 0.0 && p <= 1.0)) throw Error("class_dropout = " + num(p) + " must be in [0, 1]");
  if (labels.is_floating_point()) {  // an embedding: a dropped row becomes the zero (null) row
    if (labels.dim() != 2 || labels.size(0) != n)
      throw Error("diffusion loss: the conditioning embedding has shape " +
                  c10::str(labels.sizes()) + ", expected N = " + std::to_string(n) + " x E");
    torch::Tensor e = labels.to(device);
    if (p > 0.0) {
      const auto keep = torch::rand({n}, torch::dtype(torch::kFloat).device(device)) >= p;
      e = e * keep.to(e.scalar_type()).unsqueeze(1);
    }
    return e;
  }
  if (labels.dim() != 1 || labels.size(0) != n) {
    throw Error("diffusion loss: labels have shape " + c10::str(labels.sizes()) +
                ", expected N = " + std::to_string(n));
  }
  torch::Tensor y = labels.to(device, torch::kLong);
  if (p > 0.0) {
    if (null_label < 0) {
      throw Error("class_dropout = " + num(p) +
                  " needs null_label >= 0 (usually num_classes), or set class_dropout = 0");
    }
    auto drop = torch::rand({n}, torch::dtype(torch::kFloat).device(device)) < p;
    y = torch::where(drop, torch::full_like(y, null_label), y);
  }
  return y;
}

// Ho et al. 2020, Alg. 1 / eq. 14: || target - net(sqrt(abar) x0 + sqrt(1-abar) eps, t) ||^2;
// Nichol & Dhariwal 2021, Sec. 3.1 for the variance term.
LossTerms diffusion_loss_terms(const NetFn& net, const NoiseSchedule& s, const torch::Tensor& x0,
                               const torch::Tensor& labels, const LossOptions& o,
                               const torch::Tensor& t_in) {
  if (!x0.defined() || x0.dim() < 1 || x0.size(0) < 1) {
    throw Error("diffusion_loss: x0 must be a non-empty batch (N x ...)");
  }
  const int64_t n = x0.size(0), T = s.num_steps();
  if (T < 1) throw Error("diffusion_loss: empty noise schedule; use make_schedule");
  auto t = t_in.defined()
               ? t_in.to(x0.device(), torch::kLong)
               : torch::randint(0, T, {n}, torch::dtype(torch::kLong).device(x0.device()));
  auto noise = torch::randn_like(x0);
  std::vector<int64_t> shape(x0.dim(), 1);
  shape[0] = n;
  auto abar = alpha_bar_at(s, t).to(x0.device(), x0.scalar_type()).view(shape);
  auto x_t = torch::sqrt(abar) * x0 + torch::sqrt(1.0 - abar) * noise;  // Ho et al. eq. 4

  const torch::Tensor y = drop_labels(labels, n, o.class_dropout, o.null_label, x0.device());

  torch::Tensor out = net(x_t, t.to(torch::kFloat), y), v;
  if (o.learned_variance) {
    const int64_t c = x0.size(1);
    if (out.dim() != x0.dim() || out.size(1) != 2 * c)
      throw Error("diffusion_loss: a learned-variance network must return 2 x " +
                  std::to_string(c) + " channels, got shape " + c10::str(out.sizes()));
    v = (out.narrow(1, c, c) + 1.0) * 0.5;
    out = out.narrow(1, 0, c);
  }
  torch::Tensor target;
  switch (o.prediction) {
    case Prediction::Eps:
      target = noise;
      break;
    case Prediction::X0:
      target = x0;
      break;
    case Prediction::V:
      target = velocity(x0, noise, abar);
      break;
  }
  if (!out.sizes().equals(target.sizes())) {
    throw Error("diffusion_loss: network output shape " + c10::str(out.sizes()) +
                " differs from the " + to_string(o.prediction) + " target " +
                c10::str(target.sizes()) + "; check out_channels");
  }
  LossTerms terms;
  terms.t = t;
  terms.mse = (out - target).square().reshape({n, -1}).mean(1);
  if (o.learned_variance) {
    // The mean from the detached prediction: L_vlb trains only the variance.
    const torch::Tensor frozen = out.detach();
    torch::Tensor x0_pred;
    switch (o.prediction) {
      case Prediction::Eps:
        x0_pred = eps_to_x0(x_t, frozen, abar);
        break;
      case Prediction::X0:
        x0_pred = frozen;
        break;
      case Prediction::V:
        x0_pred = v_to_x0(x_t, frozen, abar);
        break;
    }
    terms.vlb = vlb_term(s, x0, x_t, t, x0_pred, p_log_variance(s, x0, t, VarianceKind::Learned, v))
                    .to(x0.scalar_type());
  }
  return terms;
}

torch::Tensor diffusion_loss(const NetFn& net, const NoiseSchedule& s, const torch::Tensor& x0,
                             const torch::Tensor& labels, const LossOptions& o) {
  return diffusion_loss_terms(net, s, x0, labels, o).mse.mean();
}

}  // namespace gm::diffusion
