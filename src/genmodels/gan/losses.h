// GAN objectives (discriminator and generator sides) and the critic regularisers.
// Non-saturating: Goodfellow et al. 2014, Sec. 3 (the practical form of the minimax game);
// hinge: Lim & Ye 2017 / Miyato et al. 2018 eq. 16-17; least squares: Mao et al. 2017 eq. 2
// (a = 0, b = c = 1); Wasserstein: Arjovsky et al. 2017 eq. 3 with the gradient penalty of
// Gulrajani et al. 2017 eq. 3; R1: Mescheder et al. 2018 eq. 9.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace gm::gan {

enum class Loss { NonSaturating, Hinge, LeastSquares, Wasserstein };
/// "ns" | "hinge" | "lsgan" | "wgan"; the error lists the valid names.
Loss parse_loss(const std::string& name);
std::vector<std::string> loss_names();

/// The discriminator's loss from its raw outputs on real and fake examples (N each).
torch::Tensor discriminator_loss(Loss loss, const torch::Tensor& d_real,
                                 const torch::Tensor& d_fake);
/// The generator's loss from the discriminator's raw outputs on fakes.
torch::Tensor generator_loss(Loss loss, const torch::Tensor& d_fake);

/// E[(||grad_x D(x_hat)||_2 - 1)^2] at x_hat = e real + (1 - e) fake, e ~ U[0, 1] per example
/// from the default generator (Gulrajani et al. 2017 eq. 3, without lambda); differentiable in
/// the critic's parameters (create_graph).
torch::Tensor gradient_penalty(const std::function<torch::Tensor(const torch::Tensor&)>& critic,
                               const torch::Tensor& real, const torch::Tensor& fake);

/// E[||grad_x D(x)||^2] on real data (Mescheder et al. 2018 eq. 9 without gamma / 2); `d_real` must
/// have been computed from `real` with requires_grad set.
torch::Tensor r1_penalty(const torch::Tensor& d_real, const torch::Tensor& real);

}  // namespace gm::gan
