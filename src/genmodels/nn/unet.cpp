// Time- and class-conditioned U-Net (Ho et al. 2020 App. B; Nichol & Dhariwal 2021 "improved
// diffusion") and a time-conditioned MLP for 2-D toys. See unet.h for the layer layout.
#include "genmodels/nn/unet.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "genmodels/core/error.h"
#include "genmodels/nn/fused_norm.h"
#include "genmodels/nn/layout.h"

namespace gm::nn {
namespace {

namespace F = torch::nn::functional;

// GroupNorm group count: min(groups, channels), which must divide channels.
int64_t norm_groups(int64_t groups, int64_t channels) {
  if (groups < 1) throw Error("UNet: groups = " + std::to_string(groups) + " must be >= 1");
  const int64_t g = std::min(groups, channels);
  if (channels % g != 0) {
    throw Error("UNet: GroupNorm with " + std::to_string(g) + " groups cannot split " +
                std::to_string(channels) +
                " channels; choose groups dividing every level width (and skip-concat widths)");
  }
  return g;
}

torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(norm_groups(groups, channels), channels));
}

// GroupNorm without an activation, through the fused operation (fused_norm.h): it computes in
// fp32 for bf16 input too, and keeps a channels-last x channels-last.
torch::Tensor gn(torch::nn::GroupNorm& norm, const torch::Tensor& x) {
  const auto& o = norm->options;
  return group_norm_act(x, o.num_groups(), norm->weight, norm->bias, o.eps(), NormActivation::None);
}

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(true));
}

void zero_(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters()) p.zero_();
}

// Timesteps as a float N vector (0-d tensors are taken as one sample).
torch::Tensor as_time_vector(const torch::Tensor& t, int64_t n, const char* who) {
  if (!t.defined()) throw Error(std::string(who) + ": timesteps t are undefined; pass N floats");
  torch::Tensor tv = t.dim() == 0 ? t.reshape({1}).expand({n}) : t;
  if (tv.dim() != 1 || tv.size(0) != n) {
    throw Error(std::string(who) + ": t has shape " + c10::str(t.sizes()) +
                ", expected one timestep per sample (" + std::to_string(n) + ")");
  }
  return tv;
}

// Labels for the class embedding: undefined -> the null class `num_classes`.
torch::Tensor as_labels(const torch::Tensor& y, int64_t n, int64_t num_classes,
                        const torch::Device& device, const char* who) {
  if (num_classes <= 0) {
    if (y.defined()) {
      throw Error(std::string(who) +
                  ": labels given to an unconditional model; set num_classes > 0 or pass none");
    }
    return {};
  }
  if (!y.defined()) return torch::full({n}, num_classes, torch::dtype(torch::kLong).device(device));
  if (y.dim() != 1 || y.size(0) != n) {
    throw Error(std::string(who) + ": labels have shape " + c10::str(y.sizes()) +
                ", expected N = " + std::to_string(n) + " int64 labels");
  }
  const auto lo = y.min().item<int64_t>(), hi = y.max().item<int64_t>();
  if (lo < 0 || hi > num_classes) {
    throw Error(std::string(who) + ": label " + std::to_string(lo < 0 ? lo : hi) + " outside [0, " +
                std::to_string(num_classes) + "] (" + std::to_string(num_classes) +
                " = null class)");
  }
  return y.to(torch::kLong);
}

}  // namespace

// Vaswani et al. 2017, Sec. 3.5 (as used by Ho et al. 2020 Sec. 4).
torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim, double max_period) {
  if (dim < 1) throw Error("timestep_embedding: dim = " + std::to_string(dim) + " must be >= 1");
  if (t.dim() != 1) throw Error("timestep_embedding: t must be 1-D (N timesteps)");
  const int64_t half = dim / 2;
  auto opts = torch::dtype(torch::kFloat).device(t.device());
  auto freqs = torch::exp(torch::arange(half, opts) * (-std::log(max_period) / half));
  auto args = t.to(torch::kFloat).unsqueeze(1) * freqs.unsqueeze(0);
  auto emb = torch::cat({torch::cos(args), torch::sin(args)}, 1);
  if (dim % 2 == 1) emb = torch::cat({emb, torch::zeros({t.size(0), 1}, opts)}, 1);
  return emb;
}

ResBlockImpl::ResBlockImpl(int64_t in_ch, int64_t out_ch, int64_t emb_dim, int64_t groups,
                           double dropout_p, bool scale_shift)
    : dropout(dropout_p), scale_shift_norm(scale_shift) {
  norm1 = register_module("norm1", group_norm(groups, in_ch));
  conv1 = register_module("conv1", conv(in_ch, out_ch, 3));
  emb_proj =
      register_module("emb_proj", torch::nn::Linear(emb_dim, scale_shift ? 2 * out_ch : out_ch));
  norm2 = register_module("norm2", group_norm(groups, out_ch));
  conv2 = register_module("conv2", conv(out_ch, out_ch, 3));
  zero_(*conv2);  // the block starts as the identity (improved-diffusion's zero_module)
  if (in_ch != out_ch) skip = register_module("skip", conv(in_ch, out_ch, 1));
}

// Ho et al. 2020 App. B residual block with time conditioning.
torch::Tensor ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& emb_act) {
  // GroupNorm + (scale, shift) + SiLU run as one fused operation (fused_norm.h).
  auto h = conv1(group_norm_silu(norm1, x));
  auto e = emb_proj(emb_act);  // N x C (x 2 with scale-shift norm)
  if (scale_shift_norm) {
    auto ss = e.chunk(2, 1);
    h = group_norm_silu(norm2, h, ss[0], ss[1]);
  } else {
    h = group_norm_silu(norm2, h + e.unsqueeze(-1).unsqueeze(-1));
  }
  if (dropout > 0.0 && is_training()) h = torch::dropout(h, dropout, true);
  h = conv2(h);
  return skip ? skip(x) + h : x + h;
}

AttentionBlockImpl::AttentionBlockImpl(int64_t channels, int64_t heads, int64_t groups)
    : num_heads(heads) {
  if (heads < 1 || channels % heads != 0) {
    throw Error("UNet: num_heads = " + std::to_string(heads) + " must divide the width " +
                std::to_string(channels) + " of every attention level");
  }
  norm = register_module("norm", group_norm(groups, channels));
  qkv = register_module("qkv", conv(channels, 3 * channels, 1));
  proj = register_module("proj", conv(channels, channels, 1));
  zero_(*proj);
}

// Vaswani et al. 2017, eq. 1: softmax(Q K^T / sqrt(d)) V, per head, over H*W positions.
torch::Tensor AttentionBlockImpl::forward(const torch::Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1), l = x.size(2) * x.size(3), d = c / num_heads;
  auto qkv_out = qkv(gn(norm, x)).reshape({n * num_heads, 3 * d, l});  // view: conv output is dense
  auto q = qkv_out.narrow(1, 0, d) * (1.0 / std::sqrt(static_cast<double>(d)));
  auto k = qkv_out.narrow(1, d, d);
  auto v = qkv_out.narrow(1, 2 * d, d);
  auto w = torch::softmax(torch::bmm(q.transpose(1, 2), k), -1);  // (B, L_query, L_key)
  auto a = torch::bmm(v, w.transpose(1, 2));                      // (B, d, L_query)
  // back in x's layout, so the residual add does not mix NCHW and channels-last
  return x + proj(a.reshape(x.sizes()).contiguous(x.suggest_memory_format()));
}

torch::Tensor UNetStageImpl::forward(const torch::Tensor& x, const torch::Tensor& emb_act) {
  torch::Tensor h = x;
  if (res) h = res(h, emb_act);
  if (attn) h = attn(h);
  if (op) {
    if (upsample) {
      h = F::interpolate(h, F::InterpolateFuncOptions()
                                .scale_factor(std::vector<double>{2.0, 2.0})
                                .mode(torch::kNearest));
    }
    h = op(h);
  }
  return h;
}

UNetImpl::UNetImpl(const UNetOptions& o) : options(o) {
  const auto name = [](int64_t v) { return std::to_string(v); };
  if (o.in_channels < 1 || o.out_channels < 1 || o.base_channels < 1) {
    throw Error("UNet: in_channels, out_channels and base_channels must be >= 1 (got " +
                name(o.in_channels) + ", " + name(o.out_channels) + ", " + name(o.base_channels) +
                ")");
  }
  if (o.channel_mult.empty()) throw Error("UNet: channel_mult is empty; e.g. use {1, 2, 2}");
  for (auto m : o.channel_mult) {
    if (m < 1) throw Error("UNet: channel_mult entry " + name(m) + " must be >= 1");
  }
  if (o.num_res_blocks < 1) {
    throw Error("UNet: num_res_blocks = " + name(o.num_res_blocks) + " must be >= 1");
  }
  const int64_t levels = static_cast<int64_t>(o.channel_mult.size());
  for (auto a : o.attention_levels) {
    if (a < 0 || a >= levels) {
      throw Error("UNet: attention level " + name(a) + " outside [0, " + name(levels - 1) +
                  "] (one index per channel_mult entry)");
    }
  }
  if (o.dropout < 0.0 || o.dropout >= 1.0) {
    throw Error("UNet: dropout = " + std::to_string(o.dropout) + " must be in [0, 1)");
  }
  if (o.num_classes < 0 || o.cond_dim < 0 || (o.num_classes > 0 && o.cond_dim > 0))
    throw Error("UNet: num_classes = " + name(o.num_classes) + " and cond_dim = " +
                name(o.cond_dim) + " must be >= 0, and at most one of them > 0");
  const auto has_attn = [&](int64_t level) {
    return std::find(o.attention_levels.begin(), o.attention_levels.end(), level) !=
           o.attention_levels.end();
  };

  const int64_t base = o.base_channels, emb_dim = 4 * base;
  time_embed = register_module(
      "time_embed", torch::nn::Sequential(torch::nn::Linear(base, emb_dim), torch::nn::SiLU(),
                                          torch::nn::Linear(emb_dim, emb_dim)));
  if (o.num_classes > 0) {
    label_emb = register_module("label_emb", torch::nn::Embedding(o.num_classes + 1, emb_dim));
  }
  if (o.cond_dim > 0) {
    cond_embed =
        register_module("cond_embed", torch::nn::Sequential(torch::nn::Linear(o.cond_dim, emb_dim),
                                                            torch::nn::SiLU(),
                                                            torch::nn::Linear(emb_dim, emb_dim)));
  }
  conv_in = register_module("conv_in", conv(o.in_channels, base, 3));

  auto make_stage = [&](int64_t in_ch, int64_t out_ch, bool attn) {
    auto s = UNetStage();
    s->res = s->register_module(
        "res", ResBlock(in_ch, out_ch, emb_dim, o.groups, o.dropout, o.scale_shift_norm));
    if (attn) s->attn = s->register_module("attn", AttentionBlock(out_ch, o.num_heads, o.groups));
    return s;
  };

  // Down path: num_res_blocks stages per level, then a strided conv (not after the last level).
  input_blocks = register_module("input_blocks", torch::nn::ModuleList());
  std::vector<int64_t> skip_ch = {base};
  int64_t ch = base;
  for (int64_t level = 0; level < levels; ++level) {
    const int64_t out_ch = base * o.channel_mult[level];
    for (int64_t i = 0; i < o.num_res_blocks; ++i) {
      down_.push_back(make_stage(ch, out_ch, has_attn(level)));
      ch = out_ch;
      skip_ch.push_back(ch);
    }
    if (level + 1 < levels) {
      auto s = UNetStage();
      s->op = s->register_module("op", conv(ch, ch, 3, 2));
      down_.push_back(s);
      skip_ch.push_back(ch);
    }
  }
  for (auto& s : down_) input_blocks->push_back(s);

  // Middle: Res-Attn-Res.
  middle_block1 = register_module("middle_block1", make_stage(ch, ch, true));
  middle_block2 = register_module("middle_block2", make_stage(ch, ch, false));

  // Up path: num_res_blocks + 1 stages per level, each eating one skip; nearest x2 + conv.
  output_blocks = register_module("output_blocks", torch::nn::ModuleList());
  for (int64_t level = levels - 1; level >= 0; --level) {
    const int64_t out_ch = base * o.channel_mult[level];
    for (int64_t i = 0; i <= o.num_res_blocks; ++i) {
      auto s = make_stage(ch + skip_ch.back(), out_ch, has_attn(level));
      skip_ch.pop_back();
      ch = out_ch;
      if (level > 0 && i == o.num_res_blocks) {
        s->op = s->register_module("op", conv(ch, ch, 3));
        s->upsample = true;
      }
      up_.push_back(s);
    }
  }
  for (auto& s : up_) output_blocks->push_back(s);

  out_norm = register_module("out_norm", group_norm(o.groups, ch));
  conv_out = register_module("conv_out", conv(ch, o.out_channels, 3));
  zero_(*conv_out);
  if (o.channels_last) set_channels_last(true);
}

bool UNetImpl::channels_last() const {
  return is_channels_last(conv_out->weight);  // C_in = the first level's width > 1: unambiguous
}

void UNetImpl::set_channels_last(bool on) {
  options.channels_last = on;
  set_conv_layout(*this, on);
}

// Ho et al. 2020 App. B: eps_theta(x_t, t) (optionally class-conditioned, Ho & Salimans 2022).
torch::Tensor UNetImpl::forward(const torch::Tensor& x, const torch::Tensor& t,
                                const torch::Tensor& y) {
  const int64_t levels = static_cast<int64_t>(options.channel_mult.size());
  const int64_t factor = int64_t{1} << (levels - 1);
  if (x.dim() != 4 || x.size(1) != options.in_channels || x.size(2) % factor != 0 ||
      x.size(3) % factor != 0) {
    throw Error("UNet: input shape " + c10::str(x.sizes()) + " must be N x " +
                std::to_string(options.in_channels) + " x H x W with H, W divisible by " +
                std::to_string(factor) + " (2^(levels-1))");
  }
  const int64_t n = x.size(0);
  auto emb =
      time_embed->forward(timestep_embedding(as_time_vector(t, n, "UNet"), options.base_channels));
  if (options.cond_dim > 0) {
    torch::Tensor c;
    if (!y.defined()) {
      c = torch::zeros({n, options.cond_dim}, x.options().dtype(torch::kFloat));
    } else if (!y.is_floating_point() || y.dim() != 2 || y.size(0) != n ||
               y.size(1) != options.cond_dim) {
      throw Error("UNet: the conditioning embedding has shape " + c10::str(y.sizes()) +
                  (y.is_floating_point() ? "" : " (integer)") + ", expected float " +
                  std::to_string(n) + " x " + std::to_string(options.cond_dim));
    } else {
      c = y.to(x.device(), torch::kFloat);
    }
    emb = emb + cond_embed->forward(c * std::sqrt(static_cast<double>(options.cond_dim)));
  } else {
    auto labels = as_labels(y, n, options.num_classes, x.device(), "UNet");
    if (labels.defined()) emb = emb + label_emb(labels);
  }
  const auto emb_act = torch::silu(emb);  // every block's embedding projection starts with SiLU

  std::vector<torch::Tensor> skips;
  skips.reserve(down_.size() + 1);
  if (options.channels_last != channels_last()) set_channels_last(options.channels_last);
  auto h = conv_in(options.channels_last ? strictly_channels_last(x) : x);
  skips.push_back(h);
  for (auto& s : down_) {
    h = s(h, emb_act);
    skips.push_back(h);
  }
  h = middle_block2(middle_block1(h, emb_act), emb_act);
  for (auto& s : up_) {
    h = s(torch::cat({h, skips.back()}, 1), emb_act);
    skips.pop_back();
  }
  // NCHW out whatever the layout inside (a copy only for several channels), so callers can view()
  return conv_out(group_norm_silu(out_norm, h)).contiguous();
}

TimeMLPImpl::TimeMLPImpl(const TimeMLPOptions& o) : options(o) {
  if (o.dim < 1 || o.hidden < 1 || o.depth < 0 || o.out_dim < 1 || o.num_classes < 0) {
    throw Error("TimeMLP: need dim, hidden, out_dim >= 1 and depth, num_classes >= 0 (got dim " +
                std::to_string(o.dim) + ", hidden " + std::to_string(o.hidden) + ", depth " +
                std::to_string(o.depth) + ")");
  }
  input = register_module("input", torch::nn::Linear(o.dim, o.hidden));
  time_embed = register_module(
      "time_embed", torch::nn::Sequential(torch::nn::Linear(o.hidden, o.hidden), torch::nn::SiLU(),
                                          torch::nn::Linear(o.hidden, o.hidden)));
  if (o.num_classes > 0) {
    label_emb = register_module("label_emb", torch::nn::Embedding(o.num_classes + 1, o.hidden));
  }
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.depth; ++i) {
    layers_.push_back(torch::nn::Linear(o.hidden, o.hidden));
    layers->push_back(layers_.back());
  }
  out = register_module("out", torch::nn::Linear(o.hidden, o.out_dim));
}

// Sinusoidally time-conditioned MLP (Ho et al. 2020 Sec. 4 embedding on a toy network).
torch::Tensor TimeMLPImpl::forward(const torch::Tensor& x, const torch::Tensor& t,
                                   const torch::Tensor& y) {
  if (x.dim() != 2 || x.size(1) != options.dim) {
    throw Error("TimeMLP: input shape " + c10::str(x.sizes()) + " must be N x " +
                std::to_string(options.dim));
  }
  const int64_t n = x.size(0);
  auto h = input(x) +
           time_embed->forward(timestep_embedding(as_time_vector(t, n, "TimeMLP"), options.hidden));
  auto labels = as_labels(y, n, options.num_classes, x.device(), "TimeMLP");
  if (labels.defined()) h = h + label_emb(labels);
  for (auto& l : layers_) h = l(torch::silu(h));
  return out(torch::silu(h));
}

}  // namespace gm::nn
