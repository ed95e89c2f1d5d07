// Variational dequantisation (Ho, Chen, Srinivas, Duan & Abbeel 2019, "Flow++", sec. 3.1).
// A continuous density p on dequantised data k + u (k: 8-bit levels, u in [0, 1)^D) bounds the
// discrete likelihood through any noise distribution q(u | k) on the unit cube (eq. 12):
//   log P(k) >= E_{u ~ q}[log p(k + u) - log q(u | k)],
// with equality when q(u | k) = p(k + u) / P(k). Uniform dequantisation is q = 1; here q is a
// learned conditional flow (eq. 11), trained jointly with p:
//   eps ~ N(0, I) -> `couplings` affine couplings (checkerboard masks, alternating parity) whose
//   networks also see features of k (a small conv net on the image) -> a per-channel affine
//   -> the standard normal CDF,  u = Phi(f_k(eps)),
// all on 2x2 space-to-depth blocks when the image sides are even (a permutation: it changes no
// density), else on the image itself;
//   log q(u | k) = log N(eps; 0, I) - log|det du/deps|   (change of variables, exact).
// Flow++ ends in a sigmoid; Phi is used here because every layer starts as the identity, so an
// untrained q is u = Phi(eps) ~ U(0, 1)^D exactly, with log q = 0: training starts from uniform
// dequantisation and the bound can only be improved on from there.
// The test likelihood is the importance-weighted estimate (eq. 13), a bound that tightens as
// the number of draws S grows (Burda, Grosse & Salakhutdinov 2016, IWAE, theorem 1):
//   log P(k) >= E[log (1/S) sum_j p(k + u_j) / q(u_j | k)],   u_j ~ q(. | k).
// Everything here runs in the dtype of its parameters (fp32 in models), with CPU autocast off,
// so a bf16 model's dequantiser and log-determinants stay fp32.
#pragma once
#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <functional>
#include <utility>
#include <vector>

namespace gm::flow {

struct DequantizerOptions {
  std::vector<int64_t> shape;  ///< one image: {C, H, W}
  int64_t couplings = 4;       ///< conditional affine couplings (alternating checkerboard parity)
  int64_t hidden = 32;         ///< width of the feature network and of each coupling network
};

/// q(u | k): a conditional flow from N(0, I) to the open unit cube (Flow++ eq. 11); uniform
/// until trained.
class DequantizerImpl : public torch::nn::Module {
 public:
  explicit DequantizerImpl(DequantizerOptions options);

  /// Features of the 8-bit images `levels` (N x C x H x W, values 0..255) for the couplings.
  torch::Tensor features(const torch::Tensor& levels);
  /// u = Phi(f_k(eps)) in (0, 1); adds log|det du/deps| per example into `logdet`.
  torch::Tensor forward(const torch::Tensor& levels, const torch::Tensor& eps,
                        torch::Tensor& logdet);
  /// The exact inverse: eps = f_k^{-1}(Phi^{-1}(u)).
  torch::Tensor inverse(const torch::Tensor& levels, const torch::Tensor& u);
  /// {u, log q(u | k) per example} for noise eps ~ N(0, I) (reparameterised, eqs. 11-12).
  std::pair<torch::Tensor, torch::Tensor> sample(const torch::Tensor& levels,
                                                 const torch::Tensor& eps);
  /// log q(u | k) per example at given u in (0, 1)^D (through the inverse).
  torch::Tensor log_prob(const torch::Tensor& levels, const torch::Tensor& u);

  const DequantizerOptions& options() const { return options_; }

 private:
  /// Image -> the layout the flow works in (2x2 squeezed when the sides are even), and back.
  torch::Tensor to_flow_layout(const torch::Tensor& x) const;
  torch::Tensor from_flow_layout(const torch::Tensor& x) const;
  /// eps -> y = f_k(eps), before Phi, given the features of k (flow layout).
  torch::Tensor flow_forward(const torch::Tensor& eps, const torch::Tensor& feat,
                             torch::Tensor& logdet);

  DequantizerOptions options_;
  bool squeeze_ = false;
  torch::nn::Sequential features_{nullptr};
  torch::nn::ModuleList couplings_{nullptr};
  torch::Tensor log_scale_, shift_;  // the per-channel affine before Phi
};
TORCH_MODULE(Dequantizer);

/// log p(k + u) per example for the batch's levels k, as a function of the noise u.
using DequantizedLogDensity = std::function<torch::Tensor(const torch::Tensor& u)>;

/// Per example (float64): log (1/S) sum_j p(k + u_j) / q(u_j | k), S = `draws` (Flow++ eq. 13;
/// with S = 1 the variational bound of eq. 12), u_j ~ q(. | k) from `dequantizer`, or
/// u_j ~ U[0, 1)^D when it is null (then q = 1: the usual importance-weighted uniform bound).
/// Noise comes from `gen`; `levels` are the 8-bit values k (N x C x H x W).
torch::Tensor dequantized_log_likelihood(const DequantizedLogDensity& log_density,
                                         DequantizerImpl* dequantizer, const torch::Tensor& levels,
                                         int64_t draws, at::Generator& gen);

}  // namespace gm::flow
