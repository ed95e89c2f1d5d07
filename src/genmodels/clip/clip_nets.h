// CLIP's two encoders and its loss (Radford et al. 2021, "Learning Transferable Visual Models
// From Natural Language Supervision", Sec. 2.3-2.5 and Fig. 3), sized for small images:
//   - text: token + learned position embeddings, a causal pre-LayerNorm transformer (Vaswani et
//     al. 2017; the GPT-2 block layout), final LayerNorm, features at the end token, a linear
//     projection;
//   - image: a Vision Transformer (Dosovitskiy et al. 2021, eq. 1-4): patches by a strided
//     convolution, a class token, learned positions, a pre-LayerNorm transformer, LayerNorm on
//     the class token, a linear projection;
//   - loss: the symmetric cross-entropy over the cosine-similarity matrix scaled by a learned
//     temperature exp(t), t initialised at log(1 / 0.07) and clamped so exp(t) <= 100.
#pragma once
#include <torch/torch.h>

#include <random>
#include <string>
#include <vector>

#include "genmodels/nn/linear.h"

namespace gm::clip {

class Bpe;

struct TransformerOptions {
  int64_t width = 128, layers = 4, heads = 4;
  int64_t mlp_ratio = 4;
  bool causal = false;
};

class ResidualAttentionBlockImpl : public torch::nn::Module {
 public:
  ResidualAttentionBlockImpl(int64_t width, int64_t heads, int64_t mlp_ratio, bool causal);
  torch::Tensor forward(const torch::Tensor& x);  ///< N x L x W
  torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
  /// gm::nn::Linear: the fp32 GEMMs on every thread (nn/linear.h), torch::nn::Linear's names.
  nn::Linear qkv{nullptr}, proj{nullptr}, fc1{nullptr}, fc2{nullptr};
  int64_t heads;
  bool causal;
};
TORCH_MODULE(ResidualAttentionBlock);

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const TransformerOptions& o);
  torch::Tensor forward(torch::Tensor x);
  std::vector<ResidualAttentionBlock> blocks;
};
TORCH_MODULE(Transformer);

struct TextEncoderOptions {
  int64_t vocab_size = 512, context = 32, embed_dim = 64;
  TransformerOptions transformer{128, 4, 4, 4, true};
};

class TextEncoderImpl : public torch::nn::Module {
 public:
  explicit TextEncoderImpl(const TextEncoderOptions& o);
  /// tokens: N x context int64 (start, text, end, then padding); features at each row's first
  /// `end_token` (the last position when a row has none).
  torch::Tensor forward(const torch::Tensor& tokens, int64_t end_token);
  TextEncoderOptions options;
  torch::nn::Embedding token_embedding{nullptr};
  torch::Tensor positional_embedding, projection;
  Transformer transformer{nullptr};
  torch::nn::LayerNorm ln_final{nullptr};
};
TORCH_MODULE(TextEncoder);

struct VisionOptions {
  int64_t channels = 1, image_size = 28, patch = 4, embed_dim = 64;
  TransformerOptions transformer{128, 4, 4, 4, false};
  /// The encoder also takes the noise level sigma of its input (a "noised CLIP", Nichol et al.
  /// 2022, "GLIDE", Sec. 2.4): an MLP of the sinusoidal embedding of log(sigma), added to every
  /// token, so that its features mean something on the noisy x_t a diffusion sampler holds.
  bool noise_conditional = false;
};

/// The lowest noise level a noise-conditional encoder distinguishes (clean images are this).
constexpr double kMinImageSigma = 1e-3;

class VisionTransformerImpl : public torch::nn::Module {
 public:
  explicit VisionTransformerImpl(const VisionOptions& o);
  /// N x C x H x W in [-1, 1] -> N x E. Noise-conditional: images are the variance-preserving
  /// x = (x0 + sigma n) / sqrt(1 + sigma^2) and sigma is float N (undefined = clean).
  torch::Tensor forward(const torch::Tensor& images, const torch::Tensor& sigma = {});
  VisionOptions options;
  torch::nn::Conv2d patch_embed{nullptr};
  torch::nn::Sequential noise_embed{nullptr};  ///< noise-conditional: Linear, SiLU, Linear
  torch::Tensor class_embedding, positional_embedding, projection;
  torch::nn::LayerNorm ln_pre{nullptr}, ln_post{nullptr};
  Transformer transformer{nullptr};
};
TORCH_MODULE(VisionTransformer);

/// The logit scale's initial value and clamp (Radford et al. 2021, Sec. 2.5).
constexpr double kInitLogitScale = 2.659260036932778;  // log(1 / 0.07)
constexpr double kMaxLogitScale = 4.605170185988092;   // log(100)

class ClipNetImpl : public torch::nn::Module {
 public:
  ClipNetImpl(const VisionOptions& v, const TextEncoderOptions& t);
  /// L2-normalised N x E; sigma as VisionTransformerImpl::forward.
  torch::Tensor encode_image(const torch::Tensor& images, const torch::Tensor& sigma = {});
  torch::Tensor encode_text(const torch::Tensor& tokens, int64_t end_token);  ///< normalised
  /// Keeps exp(logit_scale) <= 100; call after every optimiser step.
  void clamp_logit_scale();
  VisionTransformer visual{nullptr};
  TextEncoder text{nullptr};
  torch::Tensor logit_scale;
};
TORCH_MODULE(ClipNet);

/// Symmetric InfoNCE: mean of the image->text and text->image cross-entropies of
/// exp(logit_scale) * image_features @ text_features^T with the diagonal as targets.
torch::Tensor clip_loss(const torch::Tensor& image_features, const torch::Tensor& text_features,
                        const torch::Tensor& logit_scale);

/// N x context int64 token rows: start, the text's tokens (truncated to context - 2), end, zeros.
/// With `rng`, the texts are encoded with BPE-dropout `bpe_dropout` (Bpe::encode), for training.
torch::Tensor tokenize(const Bpe& bpe, const std::vector<std::string>& texts, int64_t context,
                       double bpe_dropout = 0.0, std::mt19937_64* rng = nullptr);

/// Parameters that get weight decay (matrices and embeddings) and those that do not (gains,
/// biases, the logit scale), as the reference training code splits them.
std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> decay_groups(
    torch::nn::Module& m);

}  // namespace gm::clip
