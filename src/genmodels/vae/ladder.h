// Hierarchical (ladder) VAE for images: a bottom-up deterministic encoder and a top-down generative
// path shared with inference, as in the Ladder VAE (Sonderby et al. 2016, "Ladder Variational
// Autoencoders", Sec. 2.2: q(z_l | z_>l, x) combines the top-down state with bottom-up features),
// with the residual top-down cells of VDVAE (Child 2021, "Very Deep VAEs Generalize
// Autoregressive Models and Can Outperform Them on Images", Sec. 3, Fig. 3) and NVAE (Vahdat &
// Kautz 2020, "NVAE: A Deep Hierarchical Variational Autoencoder"), scaled down for small gray
// images on a CPU.
//
// Model and bound (Sonderby et al. Sec. 2; NVAE eq. 1), top layer first:
//   p(x, z) = p(x | z) prod_l p(z_l | z_>l),  q(z | x) = prod_l q(z_l | z_>l, x),
//   ELBO = E_q[log p(x | z)] - sum_l E_q[KL(q(z_l | z_>l, x) || p(z_l | z_>l))].
//
// Layout for a C x H x W image and R = layers_per_level.size() resolutions below the input:
//  - bottom-up: a stride-2 stem to H/2 x W/2, then at each resolution `encoder_blocks` residual
//    bottleneck blocks whose output is that resolution's features, and 2x2 average pooling down.
//  - top-down: from a learned constant at H/2^R x W/2^R, coarsest resolution first, each
//    stochastic layer computes the prior N(mu_p, sigma_p^2) from the state h and the posterior
//    relative to it (NVAE Sec. 3.2, residual Normal: mu_q = mu_p + dmu,
//    log sigma_q = log sigma_p + dlog sigma) from [h, features], draws z_l, and updates
//    h <- res(h + proj(z_l)) (VDVAE's decoder block); between resolutions h is upsampled 2x
//    (nearest). Latents are spatial: latent_channels maps at their resolution.
//  - output: a stride-2 transposed convolution from H/2 x W/2 to the likelihood's parameters, the
//    same heads as vae::Vae (logistic, bernoulli, gaussian).
// Optional class conditioning (num_classes > 0): a learned embedding added to the top-down start
// state and to the bottom-up stem features, so both p(z | y) and q(z | x, y) see the label.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "genmodels/nn/upconv.h"
#include "genmodels/vae/vae.h"

namespace gm::vae {

struct LadderOptions {
  std::vector<int64_t> shape;  ///< one image {C, H, W}; H, W divisible by 2^layers_per_level.size()
  int64_t channels = 64;       ///< width of the residual stream at every resolution
  int64_t bottleneck = 0;      ///< width inside residual blocks (0 = channels / 2)
  int64_t latent_channels = 8;  ///< channels of each stochastic layer's z
  /// stochastic layers per resolution, coarsest first: {2, 2} for 28x28 is two at 7x7, two at 14x14
  std::vector<int64_t> layers_per_level = {2, 2};
  int64_t encoder_blocks = 1;                    ///< bottom-up residual blocks per resolution
  Likelihood likelihood = Likelihood::Logistic;  ///< decoder p(x|z), as VaeOptions::likelihood
  int64_t num_classes = 0;  ///< > 0: class-conditional; methods then need labels y
  /// bf16: encoder and top-down networks under CPU autocast; the prior/posterior parameters, the
  /// output layer, the likelihood and the KL stay fp32.
  bool bf16 = false;
};

/// KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))) elementwise (closed form):
/// 1/2 (logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2) / exp(logvar_p) - 1).
torch::Tensor kl_gaussians(const torch::Tensor& mu_q, const torch::Tensor& logvar_q,
                           const torch::Tensor& mu_p, const torch::Tensor& logvar_p);

namespace detail {
// VDVAE's bottleneck block (its Block, with one 3x3 convolution instead of two): 1x1 in->mid,
// 3x3 mid->mid, 1x1 mid->out, SiLU before each conv;
// `residual` adds the input (in == out).
struct BottleneckImpl : torch::nn::Module {
  BottleneckImpl(int64_t in, int64_t mid, int64_t out, bool residual);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d c1{nullptr}, c2{nullptr}, c3{nullptr};
  bool residual;
};
TORCH_MODULE(Bottleneck);

// One stochastic layer of the top-down path (VDVAE's DecBlock with NVAE's relative posterior).
struct LadderCellImpl : torch::nn::Module {
  LadderCellImpl(int64_t channels, int64_t mid, int64_t latent, double res_scale);
  Bottleneck prior{nullptr};      // h -> (mu_p, log sigma_p, feature added to h)
  Bottleneck posterior{nullptr};  // [h, features] -> (dmu, dlog sigma)
  torch::nn::Conv2d z_proj{nullptr};
  Bottleneck res{nullptr};
};
TORCH_MODULE(LadderCell);
}  // namespace detail

class LadderVaeImpl : public torch::nn::Module {
 public:
  explicit LadderVaeImpl(LadderOptions options);

  /// One stochastic layer of a top-down pass. q's fields are undefined when z came from the prior.
  struct Layer {
    torch::Tensor z;               ///< N x latent_channels x h x w
    torch::Tensor mu_p, logvar_p;  ///< p(z_l | z_>l)
    torch::Tensor mu_q, logvar_q;  ///< q(z_l | z_>l, x)
  };
  struct Pass {
    torch::Tensor params;       ///< decoder parameters, as Vae::decode's
    std::vector<Layer> layers;  ///< top (coarsest) first
  };
  /// Posterior pass: z_l = mu_q + sigma_q * eps_l, top layer first. `eps` (one tensor per layer,
  /// each z_l's shape) fixes the noise; empty draws it from the default generator; `use_mean`
  /// takes z_l = mu_q.
  Pass posterior_pass(const torch::Tensor& x, const torch::Tensor& y = {},
                      const std::vector<torch::Tensor>& eps = {}, bool use_mean = false);
  /// Prior pass: z_l = mu_p + temperature * sigma_p * eps_l with eps from `gen`.
  Pass prior_pass(int64_t n, at::Generator& gen, const torch::Tensor& y = {},
                  double temperature = 1.0);

  /// log p(x | z) per example (summed over dimensions) from decoder parameters; as Vae's.
  torch::Tensor log_likelihood(const torch::Tensor& x, const torch::Tensor& params) const;
  /// The decoder's mean in data space; as Vae's.
  torch::Tensor mean(const torch::Tensor& params) const;

  struct Terms {
    torch::Tensor log_px_z;                ///< N: one-sample reconstruction term
    torch::Tensor kl;                      ///< N: sum of kl_layers
    std::vector<torch::Tensor> kl_layers;  ///< N each, top first: KL(q(z_l|z_>l,x) || p(z_l|z_>l))
  };
  /// The ELBO's terms for target `x`: one reparameterised draw of z ~ q (default generator) and
  /// each layer's closed-form KL given the drawn z_>l (the usual hierarchical-VAE estimator).
  Terms elbo_terms(const torch::Tensor& x, const torch::Tensor& y = {});
  /// N x k log importance weights log p(x|z) + sum_l [log p(z_l|z_>l) - log q(z_l|z_>l,x)],
  /// z ~ q, at most `max_batch` rows per pass (Burda et al. 2016, eq. 8); as Vae's (a smaller
  /// default batch: a pass keeps spatial feature maps per row).
  torch::Tensor log_weights(const torch::Tensor& x, int64_t k, int64_t max_batch = 512,
                            const torch::Tensor& y = {});
  /// Decoder parameters of n draws from the prior, z_l ~ N(mu_p, (temperature sigma_p)^2).
  torch::Tensor sample_params(int64_t n, at::Generator& gen, const torch::Tensor& y = {},
                              double temperature = 1.0);
  /// Decoder parameters with every z_l at its posterior mean.
  torch::Tensor reconstruct(const torch::Tensor& x, const torch::Tensor& y = {});

  const LadderOptions& options() const { return options_; }
  int64_t dims() const;  ///< data dimensions C * H * W
  int64_t num_layers() const { return static_cast<int64_t>(cells_.size()); }
  /// Spatial side (height, width) of layer l's z, top first.
  std::pair<int64_t, int64_t> latent_size(int64_t layer) const;

 private:
  std::vector<torch::Tensor> bottom_up(const torch::Tensor& x, const torch::Tensor& y);
  // The shared top-down pass: with `features` (bottom-up, finest first) it samples q, without it p.
  Pass top_down(int64_t n, const std::vector<torch::Tensor>* features, const torch::Tensor& y,
                const std::vector<torch::Tensor>& eps, bool use_mean, at::Generator* gen,
                double temperature);
  torch::Tensor class_embedding(const torch::Tensor& y, int64_t rows);

  LadderOptions options_;
  int64_t params_per_dim_ = 2;
  std::vector<int64_t> level_of_cell_;  // resolution index of each cell (0 = finest)
  torch::nn::Conv2d stem_{nullptr};
  std::vector<torch::nn::Sequential> encoder_;  // per resolution, finest first
  torch::Tensor h_top_;                         // learned top-down start state
  std::vector<detail::LadderCell> cells_;       // top first
  torch::nn::Embedding class_emb_{nullptr};
  gm::nn::UpConv2x out_{nullptr};
};
TORCH_MODULE(LadderVae);

}  // namespace gm::vae
