// CLIP encoders and loss (see clip_nets.h). Initialisation follows the CLIP paper's released
// model description as open_clip documents it: embeddings N(0, 0.02) / positions N(0, 0.01),
// attention input projections std width^-1/2, output projections std width^-1/2 (2 layers)^-1/2,
// MLP input std (2 width)^-1/2, the final projections std width^-1/2.
#include "genmodels/clip/clip_nets.h"

#include <cmath>
#include <limits>

#include "genmodels/clip/bpe.h"
#include "genmodels/core/error.h"
#include "genmodels/nn/unet.h"

namespace gm::clip {
namespace {

void normal_(torch::Tensor t, double std) {
  torch::NoGradGuard g;
  t.normal_(0.0, std);
}

void check_transformer(const TransformerOptions& o, const char* who) {
  if (o.width < 1 || o.layers < 0 || o.heads < 1 || o.width % o.heads != 0 || o.mlp_ratio < 1)
    throw Error(std::string(who) + ": width " + std::to_string(o.width) + ", heads " +
                std::to_string(o.heads) + ", layers " + std::to_string(o.layers) +
                ": needs width divisible by heads, heads >= 1, layers >= 0");
}

}  // namespace

ResidualAttentionBlockImpl::ResidualAttentionBlockImpl(int64_t width, int64_t h, int64_t mlp_ratio,
                                                       bool c)
    : heads(h), causal(c) {
  ln1 = register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  qkv = register_module("qkv", nn::Linear(width, 3 * width));
  proj = register_module("proj", nn::Linear(width, width));
  ln2 = register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  fc1 = register_module("fc1", nn::Linear(width, mlp_ratio * width));
  fc2 = register_module("fc2", nn::Linear(mlp_ratio * width, width));
}

// Pre-LN block: x + Attn(LN(x)), then x + MLP(LN(x)) with GELU (Hendrycks & Gimpel 2016).
torch::Tensor ResidualAttentionBlockImpl::forward(const torch::Tensor& x) {
  const int64_t n = x.size(0), l = x.size(1), w = x.size(2), d = w / heads;
  const auto qkv_out = qkv(ln1(x)).view({n, l, 3, heads, d}).permute({2, 0, 3, 1, 4});
  const auto q = qkv_out[0] * (1.0 / std::sqrt(double(d))), k = qkv_out[1], v = qkv_out[2];
  torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1));  // N x H x L x L
  if (causal) {
    const auto future = torch::ones({l, l}, torch::dtype(torch::kBool).device(x.device())).triu(1);
    scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  }
  const auto attn = torch::matmul(torch::softmax(scores, -1), v);  // N x H x L x d
  torch::Tensor h = x + proj(attn.transpose(1, 2).reshape({n, l, w}));
  return h + fc2(torch::gelu(fc1(ln2(h))));
}

TransformerImpl::TransformerImpl(const TransformerOptions& o) {
  check_transformer(o, "clip transformer");
  const double attn_std = std::pow(double(o.width), -0.5);
  const double proj_std = attn_std * std::pow(2.0 * double(std::max<int64_t>(o.layers, 1)), -0.5);
  const double fc_std = std::pow(2.0 * double(o.width), -0.5);
  for (int64_t i = 0; i < o.layers; ++i) {
    auto b = register_module("block" + std::to_string(i),
                             ResidualAttentionBlock(o.width, o.heads, o.mlp_ratio, o.causal));
    normal_(b->qkv->weight, attn_std);
    normal_(b->proj->weight, proj_std);
    normal_(b->fc1->weight, fc_std);
    normal_(b->fc2->weight, proj_std);
    blocks.push_back(b);
  }
}

torch::Tensor TransformerImpl::forward(torch::Tensor x) {
  for (auto& b : blocks) x = b(x);
  return x;
}

TextEncoderImpl::TextEncoderImpl(const TextEncoderOptions& o) : options(o) {
  if (o.vocab_size < 3 || o.context < 3 || o.embed_dim < 1)
    throw Error("clip text encoder: vocab_size " + std::to_string(o.vocab_size) + ", context " +
                std::to_string(o.context) + ", embed_dim " + std::to_string(o.embed_dim) +
                ": needs vocab >= 3, context >= 3, embed_dim >= 1");
  const int64_t w = o.transformer.width;
  token_embedding = register_module("token_embedding", torch::nn::Embedding(o.vocab_size, w));
  positional_embedding = register_parameter("positional_embedding", torch::empty({o.context, w}));
  transformer = register_module("transformer", Transformer(o.transformer));
  ln_final = register_module("ln_final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w})));
  projection = register_parameter("projection", torch::empty({w, o.embed_dim}));
  normal_(token_embedding->weight, 0.02);
  normal_(positional_embedding, 0.01);
  normal_(projection, std::pow(double(w), -0.5));
}

torch::Tensor TextEncoderImpl::forward(const torch::Tensor& tokens, int64_t end_token) {
  if (tokens.dim() != 2 || tokens.size(1) != options.context)
    throw Error("clip text encoder: tokens have shape " + c10::str(tokens.sizes()) +
                ", expected N x " + std::to_string(options.context));
  // Position of each row's first end token: argmax of a strictly decreasing score on matches.
  const auto pos = torch::arange(options.context, tokens.options());
  const auto is_end = tokens == end_token;
  const auto first_end =
      torch::where(is_end.any(1), (is_end.to(torch::kLong) * (options.context - pos)).argmax(1),
                   torch::full({tokens.size(0)}, options.context - 1, tokens.options()));
  // The mask is causal, so nothing before a row's end token depends on what follows it: the
  // transformer only runs up to the batch's last end token (captions are shorter than the
  // context; the features and their gradients are the same).
  const int64_t len = tokens.size(0) > 0 ? first_end.max().item<int64_t>() + 1 : options.context;
  const bool truncate = options.transformer.causal && len < options.context;
  const torch::Tensor t = truncate ? tokens.narrow(1, 0, len) : tokens;
  const torch::Tensor p = truncate ? positional_embedding.narrow(0, 0, len) : positional_embedding;
  torch::Tensor x = ln_final(transformer(token_embedding(t) + p));
  const auto feats = x.index({torch::arange(tokens.size(0), tokens.options()), first_end});
  return torch::matmul(feats, projection);
}

VisionTransformerImpl::VisionTransformerImpl(const VisionOptions& o) : options(o) {
  if (o.patch < 1 || o.image_size % o.patch != 0 || o.channels < 1 || o.embed_dim < 1)
    throw Error("clip vision transformer: patch " + std::to_string(o.patch) +
                " must divide image_size " + std::to_string(o.image_size) +
                " (and channels, embed_dim >= 1)");
  const int64_t w = o.transformer.width,
                tokens = (o.image_size / o.patch) * (o.image_size / o.patch);
  patch_embed = register_module(
      "patch_embed",
      torch::nn::Conv2d(
          torch::nn::Conv2dOptions(o.channels, w, o.patch).stride(o.patch).bias(false)));
  class_embedding = register_parameter("class_embedding", torch::empty({w}));
  positional_embedding = register_parameter("positional_embedding", torch::empty({tokens + 1, w}));
  ln_pre = register_module("ln_pre", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w})));
  transformer = register_module("transformer", Transformer(o.transformer));
  ln_post = register_module("ln_post", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w})));
  projection = register_parameter("projection", torch::empty({w, o.embed_dim}));
  if (o.noise_conditional)
    noise_embed = register_module(
        "noise_embed",
        torch::nn::Sequential(torch::nn::Linear(w, w), torch::nn::SiLU(), torch::nn::Linear(w, w)));
  const double scale = std::pow(double(w), -0.5);
  normal_(class_embedding, scale);
  normal_(positional_embedding, scale);
  normal_(projection, scale);
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& images,
                                             const torch::Tensor& sigma) {
  if (images.dim() != 4 || images.size(1) != options.channels ||
      images.size(2) != options.image_size || images.size(3) != options.image_size)
    throw Error("clip vision transformer: images have shape " + c10::str(images.sizes()) +
                ", expected N x " + std::to_string(options.channels) + " x " +
                std::to_string(options.image_size) + " x " + std::to_string(options.image_size));
  const int64_t n = images.size(0);
  torch::Tensor x = patch_embed(images).flatten(2).transpose(1, 2);  // N x P x W
  x = torch::cat({class_embedding.view({1, 1, -1}).expand({n, 1, x.size(2)}), x}, 1);
  x = x + positional_embedding;
  if (noise_embed) {
    if (sigma.defined() && (sigma.dim() != 1 || sigma.size(0) != n))
      throw Error("clip vision transformer: sigma has shape " + c10::str(sigma.sizes()) +
                  ", expected N = " + std::to_string(n));
    // c_noise = log(sigma) / 4 (Karras et al. 2022, Table 1), x1000 as a timestep.
    const torch::Tensor s =
        sigma.defined() ? sigma.to(images.device(), torch::kFloat).clamp_min(kMinImageSigma)
                        : torch::full({n}, kMinImageSigma, images.options().dtype(torch::kFloat));
    const torch::Tensor e = nn::timestep_embedding(s.log() * 250.0, x.size(2));
    x = x + noise_embed->forward(e.to(x.scalar_type())).unsqueeze(1);
  }
  x = transformer(ln_pre(x));
  return torch::matmul(ln_post(x.select(1, 0)), projection);
}

ClipNetImpl::ClipNetImpl(const VisionOptions& v, const TextEncoderOptions& t) {
  if (v.embed_dim != t.embed_dim)
    throw Error("clip: image embed_dim " + std::to_string(v.embed_dim) + " != text embed_dim " +
                std::to_string(t.embed_dim));
  visual = register_module("visual", VisionTransformer(v));
  text = register_module("text", TextEncoder(t));
  logit_scale = register_parameter("logit_scale", torch::full({}, kInitLogitScale));
}

torch::Tensor ClipNetImpl::encode_image(const torch::Tensor& images, const torch::Tensor& sigma) {
  return torch::nn::functional::normalize(visual(images, sigma),
                                          torch::nn::functional::NormalizeFuncOptions().dim(-1));
}

torch::Tensor ClipNetImpl::encode_text(const torch::Tensor& tokens, int64_t end_token) {
  return torch::nn::functional::normalize(text(tokens, end_token),
                                          torch::nn::functional::NormalizeFuncOptions().dim(-1));
}

void ClipNetImpl::clamp_logit_scale() {
  torch::NoGradGuard g;
  logit_scale.clamp_(0.0, kMaxLogitScale);
}

torch::Tensor clip_loss(const torch::Tensor& image_features, const torch::Tensor& text_features,
                        const torch::Tensor& logit_scale) {
  if (image_features.sizes() != text_features.sizes())
    throw Error("clip_loss: image features " + c10::str(image_features.sizes()) +
                " and text features " + c10::str(text_features.sizes()) + " differ");
  const auto logits = logit_scale.exp() * torch::matmul(image_features, text_features.t());
  const auto target =
      torch::arange(logits.size(0), torch::dtype(torch::kLong).device(logits.device()));
  return 0.5 * (torch::nn::functional::cross_entropy(logits, target) +
                torch::nn::functional::cross_entropy(logits.t(), target));
}

torch::Tensor tokenize(const Bpe& bpe, const std::vector<std::string>& texts, int64_t context,
                       double bpe_dropout, std::mt19937_64* rng) {
  if (context < 3) throw Error("clip: context = " + std::to_string(context) + " must be >= 3");
  torch::Tensor out = torch::zeros({static_cast<int64_t>(texts.size()), context}, torch::kLong);
  auto a = out.accessor<int64_t, 2>();
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto ids = rng ? bpe.encode(texts[i], bpe_dropout, *rng) : bpe.encode(texts[i]);
    const int64_t len = std::min<int64_t>(static_cast<int64_t>(ids.size()), context - 2);
    a[i][0] = bpe.start_token();
    for (int64_t j = 0; j < len; ++j) a[i][j + 1] = ids[j];
    a[i][len + 1] = bpe.end_token();
  }
  return out;
}

std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> decay_groups(
    torch::nn::Module& m) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : m.named_parameters()) {
    const std::string& k = p.key();
    const bool is_gain_or_bias = p.value().dim() < 2 || k.find("ln") != std::string::npos ||
                                 k.find("bias") != std::string::npos ||
                                 k.find("logit_scale") != std::string::npos;
    (is_gain_or_bias ? no_decay : decay).push_back(p.value());
  }
  return {decay, no_decay};
}

}  // namespace gm::clip
