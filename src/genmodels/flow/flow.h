// Normalizing flows with exact log-density: RealNVP (Dinh et al. 2017) and Glow (Kingma &
// Dhariwal 2018), multi-scale for images and MLP-coupling flows for vectors (2-D toys).
//
// log p(x) = sum_i log N(z_i; 0, I) + log|det dz/dx|   (change of variables, RealNVP eq. 3)
// where z_1..z_L are the latents factored out at each level (the last one is what is left).
//
// Images (C x H x W), `levels` = L:
//  - realnvp: per level l < L: `steps` checkerboard couplings, squeeze, `steps` channel couplings,
//    factor out half; the last level: steps + 1 checkerboard couplings (RealNVP sec. 3.6, with
//    ActNorm after every coupling in place of batch normalisation). Log-scale s = a tanh(h).
//  - glow: per level: squeeze, `steps` x [ActNorm, invertible 1x1 conv, channel affine coupling
//    with sigmoid scale], factor out half with a learned conditional prior (not at the last level)
//    (Glow sec. 3, fig. 2).
// Vectors (D): `steps` couplings with alternating feature masks (realnvp), or `steps` x
// [ActNorm, invertible linear, coupling] (glow).
#pragma once
#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "genmodels/flow/blocks.h"

namespace gm::flow {

struct FlowOptions {
  std::vector<int64_t> shape;  ///< one example: {C, H, W} or {D}
  std::string arch = "glow";   ///< "glow" | "realnvp"
  int64_t levels = 0;         ///< images: multi-scale levels (0 = as many as the size allows, <= 3)
  int64_t steps = 8;          ///< flow steps (glow) / couplings per phase (realnvp) per level
  int64_t hidden = 128;       ///< conditioner width
  int64_t res_blocks = 0;     ///< residual blocks in image conditioners (0 = Glow's 3 convs)
  int64_t mlp_layers = 2;     ///< hidden layers of vector conditioners
  bool learned_prior = true;  ///< Glow's conditional prior at each factor-out
  std::string scale = "auto";  ///< coupling log-scale: "sigmoid" | "tanh" ("auto": glow sigmoid)
  double scale_bound = 3.0;    ///< soft bound of sigmoid log-scales (CouplingOptions)
  bool bf16 = false;           ///< conditioner networks in bf16 (CouplingOptions::bf16)
  bool channels_last = false;  ///< conditioner convolutions NHWC (CouplingOptions::channels_last)
  /// Images: > 0 makes the flow class-conditional, log p(x | y), through a learned per-class
  /// prior on every latent (ClassPrior); the bijection itself does not see y.
  int64_t num_classes = 0;
};

/// Levels the image side allows: halvings while both sides stay even, at most 3.
int64_t auto_levels(const std::vector<int64_t>& shape);

class FlowImpl : public torch::nn::Module {
 public:
  explicit FlowImpl(FlowOptions options);

  /// x -> {latents (each ~ N(0, I) under the model), log|det dz/dx| per example}. `y`: int64
  /// labels (N), required when class-conditional and ignored otherwise.
  std::pair<std::vector<torch::Tensor>, torch::Tensor> encode(const torch::Tensor& x,
                                                              const torch::Tensor& y = {});
  /// The exact inverse of encode().
  torch::Tensor decode(const std::vector<torch::Tensor>& latents, const torch::Tensor& y = {});
  /// log p(x) (or log p(x | y)) per example in nats (a density on the flow's input space).
  torch::Tensor log_prob(const torch::Tensor& x, const torch::Tensor& y = {});
  /// n draws: latents ~ N(0, temperature^2 I) pushed through decode() (of class y when given).
  torch::Tensor sample(int64_t n, double temperature, at::Generator& gen,
                       const torch::Tensor& y = {});
  bool conditional() const { return options_.num_classes > 0; }

  const FlowOptions& options() const { return options_; }
  /// Per-example shape of each latent, in encode() order.
  const std::vector<std::vector<int64_t>>& latent_shapes() const { return latent_shapes_; }

 private:
  struct Item {
    std::shared_ptr<Bijection> bijection;  // or
    std::shared_ptr<Split> split;
  };
  void add(std::shared_ptr<Bijection> b);
  void add_split(std::shared_ptr<Split> s);

  FlowOptions options_;
  torch::nn::ModuleList items_module_;
  std::vector<Item> items_;
  std::vector<std::vector<int64_t>> latent_shapes_;
  std::shared_ptr<ClassPrior> top_prior_;  // class-conditional: the last latent's prior
};
TORCH_MODULE(Flow);

/// Logit dequantisation pre-processing (RealNVP sec. 4.1): y = logit(alpha + (1 - 2 alpha) u) for
/// u in (0, 1); adds log|dy/du| per example into `logdet`.
torch::Tensor logit_transform(const torch::Tensor& u, double alpha, torch::Tensor& logdet);
/// The inverse: u = (sigmoid(y) - alpha) / (1 - 2 alpha).
torch::Tensor logit_inverse(const torch::Tensor& y, double alpha);

/// log p on a size x size grid over [-extent, extent]^2 of a 2-D flow; row 0 is y = +extent
/// (image orientation). Cell centres, so sum(exp) * (2 extent / size)^2 approximates the mass.
torch::Tensor log_prob_grid(FlowImpl& flow, double extent, int64_t size);

}  // namespace gm::flow
