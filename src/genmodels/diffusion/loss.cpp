// Simple diffusion loss (Ho et al. 2020 eq. 14; v target Salimans & Ho 2022; CFG dropout
// Ho & Salimans 2022 Alg. 1).
#include "genmodels/diffusion/loss.h"

#include "genmodels/core/error.h"

namespace gm::diffusion {

// Ho et al. 2020, Alg. 1 / eq. 14: || target - net(sqrt(abar) x0 + sqrt(1-abar) eps, t) ||^2.
torch::Tensor diffusion_loss(const NetFn& net, const NoiseSchedule& s, const torch::Tensor& x0,
                             const torch::Tensor& labels, const LossOptions& o) {
  if (!x0.defined() || x0.dim() < 1 || x0.size(0) < 1) {
    throw Error("diffusion_loss: x0 must be a non-empty batch (N x ...)");
  }
  if (!(o.class_dropout >= 0.0 && o.class_dropout <= 1.0)) {
    throw Error("diffusion_loss: class_dropout = " + std::to_string(o.class_dropout) +
                " must be in [0, 1]");
  }
  const int64_t n = x0.size(0), T = s.num_steps();
  if (T < 1) throw Error("diffusion_loss: empty noise schedule; use make_schedule");
  auto t = torch::randint(0, T, {n}, torch::dtype(torch::kLong).device(x0.device()));
  auto noise = torch::randn_like(x0);
  std::vector<int64_t> shape(x0.dim(), 1);
  shape[0] = n;
  auto abar = alpha_bar_at(s, t).to(x0.device(), x0.scalar_type()).view(shape);
  auto x_t = torch::sqrt(abar) * x0 + torch::sqrt(1.0 - abar) * noise;  // Ho et al. eq. 4

  torch::Tensor y;
  if (labels.defined()) {
    if (labels.dim() != 1 || labels.size(0) != n) {
      throw Error("diffusion_loss: labels have shape " + c10::str(labels.sizes()) +
                  ", expected N = " + std::to_string(n));
    }
    y = labels.to(x0.device(), torch::kLong);
    if (o.class_dropout > 0.0) {
      if (o.null_label < 0) {
        throw Error("diffusion_loss: class_dropout = " + std::to_string(o.class_dropout) +
                    " needs null_label >= 0 (usually num_classes), or set class_dropout = 0");
      }
      auto drop =
          torch::rand({n}, torch::dtype(torch::kFloat).device(x0.device())) < o.class_dropout;
      y = torch::where(drop, torch::full_like(y, o.null_label), y);
    }
  }

  auto out = net(x_t, t.to(torch::kFloat), y);
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
  return torch::mse_loss(out, target);
}

}  // namespace gm::diffusion
