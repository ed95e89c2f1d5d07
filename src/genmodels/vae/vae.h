// Variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes"), beta-VAE
// (Higgins et al. 2017) and the importance-weighted bound (Burda, Grosse & Salakhutdinov 2016,
// "Importance Weighted Autoencoders", eq. 8).
//
// q(z|x) = N(mu(x), diag exp(logvar(x))), a prior p(z) and a decoder likelihood p(x|z).
// Priors:
//  - standard: p(z) = N(0, I), KL in closed form.
//  - vamp: the VampPrior (Tomczak & Welling 2018, "VAE with a VampPrior", eq. 9),
//    p(z) = 1/K sum_k q(z | u_k) with K learned pseudo-inputs u_k in data space; the KL term is
//    the one-sample estimate log q(z|x) - log p(z).
//  - learned: a learned diagonal Gaussian p(z|y) = N(m_y, diag exp(s_y)) per class (one for an
//    unconditional model), the conditional prior of the CVAE (Sohn et al. 2015, "Learning
//    Structured Output Representation using Deep Conditional Generative Models", Sec. 3.1, the
//    prior network p(z|x) with the class as its input); the KL stays in closed form. With labels it
//    keeps each class's posteriors around its own mean, so z drawn for class y decodes as class y
//    even where z also carries the class (with N(0, I) every class shares one region).
// Class-conditional (Kingma et al. 2014, "Semi-supervised learning with deep generative models",
// M2's q(z|x,y) and p(x|y,z); Sohn et al. 2015, CVAE): with num_classes > 0 the label enters the
// encoder's and the decoder's first fully connected layer as a learned class embedding added to
// its output (the same as concatenating the one-hot label to that layer's input), and with the
// VampPrior every class has its own K / num_classes pseudo-inputs, encoded with that class, so
// p(z|y) is a per-class mixture. Methods take an optional trailing label tensor y (int64 N);
// an unconditional model ignores it.
// Decoder likelihoods:
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

enum class Prior { Standard, Vamp, Learned };
/// "standard" | "vamp" | "learned"; the error names model.prior and lists them.
Prior parse_prior(const std::string& name);

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
  /// > 0: class-conditional encoder q(z|x,y) and decoder p(x|z,y) over this many classes.
  int64_t num_classes = 0;
  Prior prior = Prior::Standard;  ///< p(z): N(0, I) or the VampPrior
  /// VampPrior components K; conditional: K / num_classes per class (rounded down, >= 1 each).
  int64_t pseudo_inputs = 500;
  /// conv: encoder convolutions and decoder upsamplers channels-last (NHWC weights and
  /// activations; the flattening and the decoder's output are NCHW, so the fully connected
  /// layers and the likelihood see the same tensors). Same values as NCHW to float rounding.
  bool channels_last = false;
};

/// KL(N(mu, exp(logvar)) || N(0, I)) summed over the last dimension (closed form,
/// Kingma & Welling 2014, appendix B): 1/2 sum (mu^2 + exp(logvar) - 1 - logvar).
torch::Tensor kl_standard_normal(const torch::Tensor& mu, const torch::Tensor& logvar);

/// Elementwise log P(x) of 8-bit levels x in [-1, 1] (x = k / 127.5 - 1) under a logistic with
/// `mean` and `log_scale` discretised into the 256 bins of width 2/255, with the edge bins taking
/// the tails. Summing exp over the 256 levels gives 1.
torch::Tensor discretized_logistic_log_prob(const torch::Tensor& x, const torch::Tensor& mean,
                                            const torch::Tensor& log_scale);

/// KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))) summed over the last dimension (closed
/// form): 1/2 sum (logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2) / exp(logvar_p) - 1).
torch::Tensor kl_diagonal_gaussians(const torch::Tensor& mu_q, const torch::Tensor& logvar_q,
                                    const torch::Tensor& mu_p, const torch::Tensor& logvar_p);

/// Elementwise log N(x; mean, exp(logvar)).
torch::Tensor gaussian_log_prob(const torch::Tensor& x, const torch::Tensor& mean,
                                const torch::Tensor& logvar);

/// log (1/K sum_k N(z; mu_k, diag exp(logvar_k))) per row of z (N x L), by logsumexp over the
/// components (the VampPrior's density, Tomczak & Welling 2018, eq. 9). mu and logvar are K x L
/// (shared by every row) or N x K x L (one mixture per row). Returns N.
torch::Tensor mixture_log_prob(const torch::Tensor& z, const torch::Tensor& mu,
                               const torch::Tensor& logvar);

class VaeImpl : public torch::nn::Module {
 public:
  explicit VaeImpl(VaeOptions options);

  /// {mu, logvar} of q(z|x[,y]), each N x latent.
  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor& x,
                                                 const torch::Tensor& y = {});
  /// Decoder parameters of p(x|z[,y]) for N x latent codes: N x (P*C) x H x W or N x (P*D),
  /// P = 1 (bernoulli) or 2 (mean and log-scale / log-variance).
  torch::Tensor decode(const torch::Tensor& z, const torch::Tensor& y = {});
  /// log p(x | z) per example (summed over dimensions) from decode()'s output; `x` is the target
  /// in data space (binary 0/1 images for bernoulli).
  torch::Tensor log_likelihood(const torch::Tensor& x, const torch::Tensor& params) const;
  /// The decoder's mean in data space ([-1, 1] images for bernoulli and logistic).
  torch::Tensor mean(const torch::Tensor& params) const;

  /// log p(z[|y]) per row of z (N x latent) under the prior.
  torch::Tensor log_prior(const torch::Tensor& z, const torch::Tensor& y = {});
  /// n codes z ~ p(z[|y]) drawn with `gen` (VampPrior: a uniform component k of the label's
  /// group, then z ~ q(z | u_k)).
  torch::Tensor sample_prior(int64_t n, at::Generator& gen, const torch::Tensor& y = {});

  struct Terms {
    torch::Tensor log_px_z;  ///< N: one-sample reconstruction term
    /// N: KL(q(z|x) || p(z)): closed form (standard prior), or the one-sample estimate
    /// log q(z|x) - log p(z) at the reconstruction term's z (VampPrior)
    torch::Tensor kl;
  };
  /// The two ELBO terms for target `x` (reparameterised z; randomness from the default generator).
  Terms elbo_terms(const torch::Tensor& x, const torch::Tensor& y = {});
  /// N x k log importance weights log p(x|z_j) + log p(z_j) - log q(z_j|x), z_j ~ q(z|x), in
  /// decoder batches of at most 4096 rows. logsumexp - log k is the IWAE-k bound; the mean is an
  /// unbiased ELBO estimate. Conditional: every term given y.
  torch::Tensor log_weights(const torch::Tensor& x, int64_t k, const torch::Tensor& y = {});

  /// VampPrior: the pseudo-inputs, (groups * per_group) x shape, group g's block together.
  const torch::Tensor& pseudo_inputs() const { return pseudo_inputs_; }
  /// VampPrior: {mu, logvar} of q(z | u_k[, g]), each groups x per_group x latent (one group per
  /// class when conditional, else one).
  std::pair<torch::Tensor, torch::Tensor> prior_components();

  const VaeOptions& options() const { return options_; }
  int64_t dims() const;  ///< data dimensions D
  bool conditional() const { return options_.num_classes > 0; }

 private:
  // log p(z | y) from prior_components()' output.
  torch::Tensor log_prior_from(const torch::Tensor& z, const torch::Tensor& y,
                               const std::pair<torch::Tensor, torch::Tensor>& components) const;
  VaeOptions options_;
  int64_t params_per_dim_;
  int64_t groups_ = 1, per_group_ = 0;  // VampPrior layout
  size_t encoder_label_at_ = 0;         // the label enters after this encoder layer
  torch::nn::Sequential encoder_{nullptr}, decoder_{nullptr};
  torch::nn::Conv2d layout_probe_{nullptr};  // conv + channels_last: the encoder's second conv
  torch::nn::Embedding encoder_class_{nullptr}, decoder_class_{nullptr};
  torch::Tensor pseudo_inputs_;
  torch::Tensor prior_mu_, prior_logvar_;  // learned prior: groups x latent
  // Learned prior: {mu, logvar} of p(z|y) for each row (N x latent).
  std::pair<torch::Tensor, torch::Tensor> learned_prior(const torch::Tensor& y, int64_t n) const;
};
TORCH_MODULE(Vae);

}  // namespace gm::vae
