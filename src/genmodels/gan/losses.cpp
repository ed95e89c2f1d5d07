#include "genmodels/gan/losses.h"

#include "genmodels/core/error.h"

namespace gm::gan {

std::vector<std::string> loss_names() { return {"ns", "hinge", "lsgan", "wgan"}; }

Loss parse_loss(const std::string& name) {
  if (name == "ns") return Loss::NonSaturating;
  if (name == "hinge") return Loss::Hinge;
  if (name == "lsgan") return Loss::LeastSquares;
  if (name == "wgan") return Loss::Wasserstein;
  throw Error("unknown GAN loss '" + name + "'; valid: ns, hinge, lsgan, wgan");
}

torch::Tensor discriminator_loss(Loss loss, const torch::Tensor& d_real,
                                 const torch::Tensor& d_fake) {
  switch (loss) {
    case Loss::NonSaturating:  // -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z))))
      return torch::softplus(-d_real).mean() + torch::softplus(d_fake).mean();
    case Loss::Hinge:  // E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]
      return torch::relu(1.0 - d_real).mean() + torch::relu(1.0 + d_fake).mean();
    case Loss::LeastSquares:  // 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]
      return 0.5 * ((d_real - 1.0).pow(2).mean() + d_fake.pow(2).mean());
    case Loss::Wasserstein:  // E[D(G(z))] - E[D(x)]
      return d_fake.mean() - d_real.mean();
  }
  return {};
}

torch::Tensor generator_loss(Loss loss, const torch::Tensor& d_fake) {
  switch (loss) {
    case Loss::NonSaturating:  // -log sigmoid(D(G(z)))
      return torch::softplus(-d_fake).mean();
    case Loss::Hinge:
    case Loss::Wasserstein:  // -E[D(G(z))]
      return -d_fake.mean();
    case Loss::LeastSquares:  // 1/2 E[(D(G(z)) - 1)^2]
      return 0.5 * (d_fake - 1.0).pow(2).mean();
  }
  return {};
}

torch::Tensor gradient_penalty(const std::function<torch::Tensor(const torch::Tensor&)>& critic,
                               const torch::Tensor& real, const torch::Tensor& fake) {
  std::vector<int64_t> shape(real.dim(), 1);
  shape[0] = real.size(0);
  const torch::Tensor e = torch::rand(shape, real.options());
  torch::Tensor x_hat = (e * real.detach() + (1.0 - e) * fake.detach()).requires_grad_(true);
  const torch::Tensor out = critic(x_hat);
  const torch::Tensor grad = torch::autograd::grad({out.sum()}, {x_hat}, {}, true, true)[0];
  return (grad.flatten(1).norm(2, 1) - 1.0).pow(2).mean();
}

torch::Tensor r1_penalty(const torch::Tensor& d_real, const torch::Tensor& real) {
  if (!real.requires_grad())
    throw Error("r1_penalty: compute d_real from real.requires_grad_(true)");
  const torch::Tensor grad = torch::autograd::grad({d_real.sum()}, {real}, {}, true, true)[0];
  return grad.flatten(1).pow(2).sum(1).mean();
}

}  // namespace gm::gan
