// Variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes"), beta-VAE
// (Higgins et al. 2017) and the importance-weighted bound (Burda, Grosse & Salakhutdinov 2016,
// "Importance Weighted Autoencoders", eq. 8).
//
// q(z|x) = N(mu(x), diag exp(logvar(x))), p(z) = N(0, I), and a decoder likelihood p(x|z):
//  - logistic: discretised logistic over the 256 levels of 8-bit pixels (Salimans et al. 2017,
//    "PixelCNN++", eq. 2; Kingma et al. 2016, IAF, appendix), per-pixel mean and log-scale. It is a
//    probability mass over pixel levels, so -log p(x) is already a discrete NLL: bits/dim need no
//    dequantisation correction (metrics/bits_per_dim.h).
//  - bernoulli: per-pixel logits over dynamically binarised images (each pass draws
//    b ~ Bernoulli(intensity); Salakhutdinov & Murray 2008), probability mass over binary images.
//  - gaussian: per-dimension mean and log-variance, for 2-D toys and other real vectors.
// Encoder/decoder are MLPs (any data) or small convolutional networks (images with sides divisible
// by 4).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace gm::vae {

enum class Likelihood { Bernoulli, Logistic, Gaussian };
/// "bernoulli" | "logistic" | "gaussian"; the error lists them.
Likelihood parse_likelihood(const std::string& name);

struct VaeOptions {
  std::vector<int64_t> shape;  ///< one example: {C, H, W} or {D}
  int64_t latent = 32;         ///< latent dimensions
  std::string arch = "conv";   ///< "mlp" | "conv" (images only)
  int64_t hidden = 512;        ///< MLP width / conv fully connected width
  int64_t channels = 32;       ///< conv: channels of the first level (second: 2x)
  Likelihood likelihood = Likelihood::Logistic;
  /// bf16: encoder and decoder body under CPU autocast; the decoder's output layer, the
  /// likelihood and the KL stay fp32 (a bf16 logistic mean would be quantised to about one
  /// pixel bin, 2/255).
  bool bf16 = false;
};

/// KL(N(mu, exp(logvar)) || N(0, I)) summed over the last dimension (closed form,
/// Kingma & Welling 2014, appendix B): 1/2 sum (mu^2 + exp(logvar) - 1 - logvar).
torch::Tensor kl_standard_normal(const torch::Tensor& mu, const torch::Tensor& logvar);

/// Elementwise log P(x) of 8-bit levels x in [-1, 1] (x = k / 127.5 - 1) under a logistic with
/// `mean` and `log_scale` discretised into the 256 bins of width 2/255, with the edge bins taking
/// the tails. Summing exp over the 256 levels gives 1.
torch::Tensor discretized_logistic_log_prob(const torch::Tensor& x, const torch::Tensor& mean,
                                            const torch::Tensor& log_scale);

/// Elementwise log N(x; mean, exp(logvar)).
torch::Tensor gaussian_log_prob(const torch::Tensor& x, const torch::Tensor& mean,
                                const torch::Tensor& logvar);

class VaeImpl : public torch::nn::Module {
 public:
  explicit VaeImpl(VaeOptions options);

  /// {mu, logvar}, each N x latent.
  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor& x);
  /// Decoder parameters for N x latent codes: N x (P*C) x H x W or N x (P*D), P = 1 (bernoulli)
  /// or 2 (mean and log-scale / log-variance).
  torch::Tensor decode(const torch::Tensor& z);
  /// log p(x | z) per example (summed over dimensions) from decode()'s output; `x` is the target
  /// in data space (binary 0/1 images for bernoulli).
  torch::Tensor log_likelihood(const torch::Tensor& x, const torch::Tensor& params) const;
  /// The decoder's mean in data space ([-1, 1] images for bernoulli and logistic).
  torch::Tensor mean(const torch::Tensor& params) const;

  struct Terms {
    torch::Tensor log_px_z;  ///< N: one-sample reconstruction term
    torch::Tensor kl;        ///< N: KL(q(z|x) || p(z)), closed form
  };
  /// The two ELBO terms for target `x` (reparameterised z; randomness from the default generator).
  Terms elbo_terms(const torch::Tensor& x);
  /// N x k log importance weights log p(x|z_j) + log p(z_j) - log q(z_j|x), z_j ~ q(z|x), with
  /// decoder batches of at most `max_batch` rows. logsumexp - log k is the IWAE-k bound; the mean
  /// is an unbiased ELBO estimate.
  torch::Tensor log_weights(const torch::Tensor& x, int64_t k, int64_t max_batch = 4096);

  const VaeOptions& options() const { return options_; }
  int64_t dims() const;  ///< data dimensions D

 private:
  VaeOptions options_;
  int64_t params_per_dim_;
  torch::nn::Sequential encoder_{nullptr}, decoder_{nullptr};
};
TORCH_MODULE(Vae);

}  // namespace gm::vae
