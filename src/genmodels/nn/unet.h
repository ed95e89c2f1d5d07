// Time- and class-conditioned U-Net for diffusion models, in the style of "improved-diffusion"
// (Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models", Sec. 3 / App. A;
// architecture of Ho et al. 2020, "Denoising Diffusion Probabilistic Models", App. B, itself a
// PixelCNN++ / Wide-ResNet U-Net with self-attention), plus a small time-conditioned MLP for 2-D
// toys. The whole U-Net lives in this header and unet.cpp so a PyTorch twin can mirror it name for
// name.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace gm::nn {

/// Sinusoidal embedding of (possibly fractional) timesteps (Vaswani et al. 2017; Ho et al. 2020
/// Sec. 4), N x dim: [cos(t w_0..w_{h-1}), sin(t w_0..w_{h-1})], w_i = max_period^(-i/h), h = dim/2
/// (a zero column is appended when dim is odd).
torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim, double max_period = 10000.0);

struct UNetOptions {
  int64_t in_channels = 1;     ///< image channels
  int64_t out_channels = 1;    ///< output channels (2 * in_channels later for learned variances)
  int64_t base_channels = 64;  ///< width of the first level
  std::vector<int64_t> channel_mult = {1, 2, 2};  ///< per resolution level; len-1 downsamplings
  int64_t num_res_blocks = 2;                     ///< residual blocks per level
  std::vector<int64_t> attention_levels = {2};  ///< level indices with self-attention (lowest res)
  int64_t num_heads = 4;                        ///< attention heads (must divide the level width)
  int64_t groups = 32;   ///< GroupNorm groups; min(groups, channels) is used and must divide them
  double dropout = 0.0;  ///< dropout before the second conv of each residual block
  /// >0: class embedding with an extra null class index num_classes for classifier-free guidance
  int64_t num_classes = 0;
  /// >0: the network also takes a float N x cond_dim embedding (e.g. CLIP text features), scaled
  /// by sqrt(cond_dim) (unit-length features -> unit-variance entries) and passed through an MLP
  /// that is added to the time embedding, as GLIDE and unCLIP add their pooled text embedding
  /// (Nichol et al. 2022, Sec. 2.3; Ramesh et al. 2022, Sec. 2.1). No embedding = zeros, the
  /// null condition that classifier-free guidance drops to.
  int64_t cond_dim = 0;
  /// Condition residual blocks by GroupNorm scale-shift, h = norm(h) (1 + s) + b (Nichol &
  /// Dhariwal 2021 / Dhariwal & Nichol 2021 "AdaGN") instead of adding the embedding.
  bool scale_shift_norm = false;
  /// Keep weights and activations channels-last (NHWC; see UNetImpl::set_channels_last).
  bool channels_last = false;
};

/// Residual block (Ho et al. 2020 App. B): GroupNorm-SiLU-Conv3x3, + projected time embedding,
/// GroupNorm-SiLU-Dropout-Conv3x3 (zero-initialised), 1x1 skip when the width changes.
struct ResBlockImpl : torch::nn::Module {
  ResBlockImpl(int64_t in_ch, int64_t out_ch, int64_t emb_dim, int64_t groups, double dropout,
               bool scale_shift_norm);
  /// x: N x in_ch x H x W; emb_act: SiLU(embedding), N x emb_dim.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb_act);

  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, skip{nullptr};
  torch::nn::Linear emb_proj{nullptr};
  double dropout = 0.0;
  bool scale_shift_norm = false;
};
TORCH_MODULE(ResBlock);

/// Multi-head self-attention over spatial positions (Vaswani et al. 2017, eq. 1; as in Ho et al.
/// 2020 App. B): GroupNorm, 1x1 qkv, softmax(q^T k / sqrt(d)) v per head, 1x1 proj (zero-init),
/// residual. Channel layout of qkv is [head0: q k v | head1: q k v | ...].
struct AttentionBlockImpl : torch::nn::Module {
  AttentionBlockImpl(int64_t channels, int64_t num_heads, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d qkv{nullptr}, proj{nullptr};
  int64_t num_heads = 1;
};
TORCH_MODULE(AttentionBlock);

/// One U-Net stage: an optional ResBlock, an optional attention block, then an optional
/// resampling conv ("op": 3x3 stride-2 conv down, or nearest x2 + 3x3 conv up).
struct UNetStageImpl : torch::nn::Module {
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb_act);

  ResBlock res{nullptr};
  AttentionBlock attn{nullptr};
  torch::nn::Conv2d op{nullptr};
  bool upsample = false;
};
TORCH_MODULE(UNetStage);

struct UNetImpl : torch::nn::Module {
  explicit UNetImpl(const UNetOptions& o);
  /// x: N x C x H x W (H, W divisible by 2^(levels-1)); t: N float timesteps (0..T-1, may be
  /// fractional); y: N int64 labels (num_classes = null label), a float N x cond_dim embedding
  /// (cond_dim > 0), or undefined when unconditional. Returns N x out_channels x H x W.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t,
                        const torch::Tensor& y = {});
  /// Channels-last (NHWC) weights, and through them activations: oneDNN's 3x3 convolutions run
  /// 1.7-2x faster in that layout on this project's CPUs, and the fused norm keeps it. Results
  /// match NCHW to float rounding. Sets options.channels_last; forward() converts the weights
  /// again after a checkpoint load has replaced them with NCHW tensors.
  void set_channels_last(bool on);
  /// Whether the weights are channels-last now.
  bool channels_last() const;
  UNetOptions options;

  torch::nn::Sequential time_embed{nullptr};  // Linear(base, 4 base), SiLU, Linear
  torch::nn::Embedding label_emb{nullptr};    // num_classes + 1 rows (last = null class)
  torch::nn::Sequential cond_embed{nullptr};  // cond_dim > 0: Linear(cond, 4 base), SiLU, Linear
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList input_blocks{nullptr}, output_blocks{nullptr};
  UNetStage middle_block1{nullptr}, middle_block2{nullptr};
  torch::nn::GroupNorm out_norm{nullptr};

 private:
  std::vector<UNetStage> down_, up_;  // typed views of input_blocks / output_blocks
};
TORCH_MODULE(UNet);

/// Small time-conditioned MLP for 2-D toys: input D, hidden width, depth, sinusoidal time
/// embedding, optional class embedding.
struct TimeMLPOptions {
  int64_t dim = 2;          ///< input dimension
  int64_t hidden = 128;     ///< hidden width (also the time-embedding width)
  int64_t depth = 3;        ///< hidden Linear layers after the input layer
  int64_t num_classes = 0;  ///< >0: class embedding with an extra null class index num_classes
  int64_t out_dim = 2;      ///< output dimension
};

/// h = W_in x + MLP(sinusoidal(t)) [+ E[y]]; depth x (SiLU, Linear); SiLU, W_out.
struct TimeMLPImpl : torch::nn::Module {
  explicit TimeMLPImpl(const TimeMLPOptions& o);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t,
                        const torch::Tensor& y = {});
  TimeMLPOptions options;

  torch::nn::Linear input{nullptr}, out{nullptr};
  torch::nn::Sequential time_embed{nullptr};
  torch::nn::Embedding label_emb{nullptr};
  torch::nn::ModuleList layers{nullptr};

 private:
  std::vector<torch::nn::Linear> layers_;
};
TORCH_MODULE(TimeMLP);

}  // namespace gm::nn
