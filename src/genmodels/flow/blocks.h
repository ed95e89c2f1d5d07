// Invertible building blocks of normalizing flows, each with an exact inverse and the log of the
// absolute Jacobian determinant (per example):
//  - AffineCoupling: RealNVP (Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real
//    NVP", eqs. 6-9) with checkerboard, channel or feature-half masks; log-scale either
//    s = a * tanh(h) (RealNVP's bounded scale, a learned per channel) or s = log sigmoid(h + 2)
//    (Glow, Kingma & Dhariwal 2018, sec. 3.3, implementation), the latter soft-bounded below
//    (the soft clamp of Ardizzone et al. 2019, in tanh form) so that sampling stays finite. The
//    conditioner's last layer starts at zero, so every coupling starts near the identity.
//  - ActNorm: per-channel affine with data-dependent initialisation (Glow, sec. 3.1, table 1).
//  - InvConv1x1: invertible 1x1 convolution, LU-decomposed W = P L (U + diag(sign(s) exp(log|s|)))
//    (Glow, sec. 3.2, eq. 10); log|det| = H W sum log|s|. On vectors it is an invertible linear
//    map.
//  - Squeeze: space-to-depth 2x2 (RealNVP sec. 3.6), volume-preserving.
//  - Split: factor-out of half the channels (RealNVP sec. 3.6), optionally with Glow's learned
//    conditional prior N(mu(kept), exp(logs(kept))) on the factored half; the factored half leaves
//    whitened, so every latent of the flow is N(0, I).
// Tensors are N x C x H x W (images) or N x D (vectors); `logdet` accumulates per example (N).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace gm::flow {

/// A bijection y = f(x) that adds log|det df/dx| per example into `logdet`.
class Bijection : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x, torch::Tensor& logdet) = 0;
  virtual torch::Tensor inverse(const torch::Tensor& y) = 0;
};

enum class Mask { Checkerboard, Channel, Half };
enum class ScaleFn { Tanh, Sigmoid };

struct CouplingOptions {
  int64_t channels = 1;  ///< C (images) or D (vectors)
  bool image = true;     ///< N x C x H x W vs N x D
  Mask mask = Mask::Channel;
  bool parity = false;  ///< which half is transformed
  ScaleFn scale = ScaleFn::Sigmoid;
  int64_t hidden = 128;    ///< conditioner width
  int64_t res_blocks = 0;  ///< images: residual blocks in the conditioner (0 = Glow's 3 convs)
  int64_t mlp_layers = 2;  ///< vectors: hidden layers of the MLP conditioner
  /// Sigmoid scale: soft bound |s| < bound via s = bound * tanh(s / bound) (0 = none). Keeps the
  /// inverse's 1 / scale at most e^bound per coupling, so sampling cannot overflow to inf/NaN.
  double scale_bound = 3.0;
  /// Run the conditioner network in bf16 (CPU autocast); its output is widened to fp32 before
  /// the scale function, and the coupling arithmetic and log-determinants are fp32. The coupling
  /// stays an exact bijection with an exact log-determinant whatever the conditioner computes:
  /// it only sees the conditioning half, the same values in forward and inverse. (Unlike the
  /// VAE's decoder, whose output is a likelihood's location, s and t need no extra bits.)
  bool bf16 = false;
  /// Images: run the conditioner's convolutions channels-last (NHWC weights and input; the
  /// output comes back NCHW, so the coupling arithmetic and every other block are unchanged).
  /// Same values as NCHW to float rounding; see gm::nn::set_conv_layout.
  bool channels_last = false;
};

class AffineCoupling : public Bijection {
 public:
  explicit AffineCoupling(CouplingOptions o);
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor& logdet) override;
  torch::Tensor inverse(const torch::Tensor& y) override;
  const CouplingOptions& options() const { return o_; }

 private:
  /// Binary mask (1 = conditioning part) broadcastable to x: 1 x 1 x H x W or 1 x D.
  torch::Tensor mask_for(const torch::Tensor& x) const;
  /// The conditioner network's output (bf16 body when options().bf16).
  torch::Tensor conditioner(const torch::Tensor& cond);
  /// {log-scale, shift} for the transformed part, from the conditioning part.
  std::pair<torch::Tensor, torch::Tensor> scale_shift(const torch::Tensor& cond);
  /// Channel masks: {conditioning half, transformed half}.
  std::pair<torch::Tensor, torch::Tensor> halves(const torch::Tensor& x) const;
  torch::Tensor join(const torch::Tensor& cond, const torch::Tensor& trans) const;

  CouplingOptions o_;
  int64_t out_channels_;
  torch::nn::Sequential net_{nullptr};
  torch::nn::Conv2d last_conv_{nullptr};  // images: its weight's layout is never ambiguous
  torch::Tensor tanh_scale_;              // RealNVP: learned per-channel bound of the log-scale
};

class ActNorm : public Bijection {
 public:
  ActNorm(int64_t channels, bool image);
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor& logdet) override;
  torch::Tensor inverse(const torch::Tensor& y) override;
  /// Reads the buffer (a device sync) only until it has been seen true: once initialised, an
  /// ActNorm stays so, and the forward pass must not sync on every call.
  bool initialized() const {
    if (!seen_initialized_) seen_initialized_ = initialized_.item<bool>();
    return seen_initialized_;
  }

 private:
  bool image_;
  mutable bool seen_initialized_ = false;
  torch::Tensor bias_, log_scale_, initialized_;
};

class InvConv1x1 : public Bijection {
 public:
  /// Initialised at a random rotation drawn from the default generator.
  InvConv1x1(int64_t channels, bool image);
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor& logdet) override;
  torch::Tensor inverse(const torch::Tensor& y) override;
  torch::Tensor weight() const;  ///< W (C x C)

 private:
  torch::Tensor apply(const torch::Tensor& x, const torch::Tensor& w) const;
  bool image_;
  torch::Tensor p_, sign_s_, lower_mask_, eye_;  // buffers
  torch::Tensor lower_, upper_, log_s_;          // parameters
};

class Squeeze : public Bijection {
 public:
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor& logdet) override;
  torch::Tensor inverse(const torch::Tensor& y) override;
};

/// The per-class prior N(mean_y, exp(logs_y)^2) of a latent (K x 2C x ... learned, zero at init:
/// N(0, I)), applied as a whitening z = (h - mean_y) exp(-logs_y), so that every latent of the
/// flow stays N(0, I). Glow's class-conditional prior (Kingma & Dhariwal 2018 sec. 5, there a
/// per-channel term on the top latent), here per position and at every factor-out.
class ClassPrior : public torch::nn::Module {
 public:
  /// `shape`: one example's latent, C x H x W or D.
  ClassPrior(int64_t num_classes, std::vector<int64_t> shape);
  /// `y`: int64 labels (N); adds -sum(logs_y) into logdet.
  torch::Tensor whiten(const torch::Tensor& h, const torch::Tensor& y, torch::Tensor& logdet);
  torch::Tensor colour(const torch::Tensor& z, const torch::Tensor& y);

 private:
  std::pair<torch::Tensor, torch::Tensor> params(const torch::Tensor& y) const;
  torch::Tensor table_;  // K x 2C x ...
};

/// Factor-out: x (C channels) -> kept (C - C/2 channels) and a whitened latent (C/2 channels).
/// With `num_classes` > 0 the whitened half is whitened once more by a ClassPrior of the labels.
class Split : public torch::nn::Module {
 public:
  /// `spatial`: H, W of x (needed only with classes).
  Split(int64_t channels, bool learned_prior, int64_t num_classes = 0,
        std::vector<int64_t> spatial = {});
  /// Returns {kept, latent}; adds -sum(logs) (the whitening) into logdet. `y`: int64 labels,
  /// required when the split is class-conditional, else ignored.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, torch::Tensor& logdet,
                                                  const torch::Tensor& y = {});
  torch::Tensor inverse(const torch::Tensor& kept, const torch::Tensor& latent,
                        const torch::Tensor& y = {});
  int64_t factored_channels() const { return channels_ / 2; }

 private:
  std::pair<torch::Tensor, torch::Tensor> prior(const torch::Tensor& kept);
  int64_t channels_;
  torch::nn::Conv2d conv_{nullptr};          // learned prior (zero-initialised), or null
  std::shared_ptr<ClassPrior> class_prior_;  // or null
};

/// log N(z; 0, I) summed over all but the first dimension.
torch::Tensor standard_normal_log_prob(const torch::Tensor& z);

}  // namespace gm::flow
