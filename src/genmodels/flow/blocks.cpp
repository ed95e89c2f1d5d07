#include "genmodels/flow/blocks.h"

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/nn/layout.h"
#include "genmodels/nn/precision.h"

namespace gm::flow {

namespace nn = torch::nn;

namespace {

constexpr double kLog2Pi = 1.8378770664093453;

torch::Tensor per_example_sum(const torch::Tensor& t) { return t.flatten(1).sum(1); }

// Elements per channel: H * W for images, 1 for vectors.
double spatial(const torch::Tensor& x) { return x.dim() == 4 ? double(x.size(2) * x.size(3)) : 1; }

std::vector<int64_t> channel_shape(int64_t c, bool image) {
  return image ? std::vector<int64_t>{1, c, 1, 1} : std::vector<int64_t>{1, c};
}

nn::Conv2d conv(int64_t in, int64_t out, int64_t k) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).padding(k / 2));
}

template <typename M>
M zero_init(M m) {
  torch::NoGradGuard ng;
  for (auto& p : m->parameters()) p.zero_();
  return m;
}

// Pre-activation residual block of the RealNVP-style conditioner: x + conv(relu(conv(relu(x)))).
struct ResBlockImpl : nn::Module {
  explicit ResBlockImpl(int64_t c)
      : c1(register_module("conv1", conv(c, c, 3))), c2(register_module("conv2", conv(c, c, 3))) {}
  torch::Tensor forward(const torch::Tensor& x) { return x + c2(torch::relu(c1(torch::relu(x)))); }
  nn::Conv2d c1, c2;
};
TORCH_MODULE(ResBlock);

}  // namespace

torch::Tensor standard_normal_log_prob(const torch::Tensor& z) {
  return -0.5 * per_example_sum(z.square() + kLog2Pi);
}

// ------------------------------------------------------------------------------ AffineCoupling
AffineCoupling::AffineCoupling(CouplingOptions o) : o_(o) {
  const int64_t C = o_.channels;
  if (o_.mask == Mask::Channel) {
    if (!o_.image || C < 2 || C % 2 != 0)
      throw Error("flow: a channel-mask coupling needs an image with an even channel count, got " +
                  std::to_string(C));
    out_channels_ = C / 2;
  } else {
    if (o_.mask == Mask::Checkerboard && !o_.image)
      throw Error("flow: checkerboard masks are for images");
    if (o_.mask == Mask::Half && (o_.image || C < 2))
      throw Error("flow: half masks are for vectors of at least 2 dimensions");
    out_channels_ = C;
  }
  const int64_t in = o_.mask == Mask::Channel ? C / 2 : C, H = o_.hidden;
  net_ = nn::Sequential();
  if (o_.image) {
    net_->push_back(conv(in, H, 3));
    if (o_.res_blocks == 0) {  // Glow: 3x3, ReLU, 1x1, ReLU, zero 3x3
      net_->push_back(nn::ReLU());
      net_->push_back(conv(H, H, 1));
    } else {
      for (int64_t i = 0; i < o_.res_blocks; ++i) net_->push_back(ResBlock(H));
    }
    net_->push_back(nn::ReLU());
    last_conv_ = zero_init(conv(H, 2 * out_channels_, 3));
    net_->push_back(last_conv_);
  } else {
    int64_t width = in;
    for (int64_t i = 0; i < std::max<int64_t>(1, o_.mlp_layers); ++i) {
      net_->push_back(nn::Linear(width, H));
      net_->push_back(nn::SiLU());
      width = H;
    }
    net_->push_back(zero_init(nn::Linear(width, 2 * out_channels_)));
  }
  register_module("net", net_);
  if (o_.image && o_.channels_last) gm::nn::set_conv_layout(*net_, true);
  if (o_.scale == ScaleFn::Tanh)
    tanh_scale_ = register_parameter("scale", torch::ones(channel_shape(out_channels_, o_.image)));
}

torch::Tensor AffineCoupling::mask_for(const torch::Tensor& x) const {
  const int64_t p = o_.parity ? 1 : 0;
  if (o_.mask == Mask::Checkerboard) {
    const int64_t H = x.size(2), W = x.size(3);
    torch::Tensor i = torch::arange(H, x.options().dtype(torch::kLong)).view({H, 1});
    torch::Tensor j = torch::arange(W, x.options().dtype(torch::kLong)).view({1, W});
    return ((i + j + p) % 2 == 0).to(x.dtype()).view({1, 1, H, W});
  }
  // Half (vectors): alternate features, so a 2-D toy conditions x on y and then y on x.
  const int64_t D = x.size(1);
  torch::Tensor d = torch::arange(D, x.options().dtype(torch::kLong));
  return ((d + p) % 2 == 0).to(x.dtype()).view({1, D});
}

torch::Tensor AffineCoupling::conditioner(const torch::Tensor& cond) {
  const bool nhwc = o_.image && o_.channels_last;
  // A checkpoint load may have replaced the weights with NCHW tensors.
  if (nhwc && !gm::nn::is_channels_last(last_conv_->weight)) gm::nn::set_conv_layout(*net_, true);
  const torch::Tensor in = nhwc ? gm::nn::strictly_channels_last(cond) : cond;
  torch::Tensor out;
  if (!o_.bf16) {
    out = net_->forward(in);
  } else {
    gm::nn::AutocastScope autocast(gm::nn::Precision::Bf16);
    out = net_->forward(in).to(torch::kFloat32);
  }
  return nhwc ? out.contiguous() : out;
}

std::pair<torch::Tensor, torch::Tensor> AffineCoupling::scale_shift(const torch::Tensor& cond) {
  auto h = conditioner(cond).chunk(2, 1);
  if (o_.scale == ScaleFn::Tanh) return {tanh_scale_ * torch::tanh(h[0]), h[1]};
  torch::Tensor s = -torch::nn::functional::softplus(-(h[0] + 2.0));  // log sigmoid(h + 2)
  if (o_.scale_bound > 0) s = o_.scale_bound * torch::tanh(s / o_.scale_bound);
  return {s, h[1]};
}

std::pair<torch::Tensor, torch::Tensor> AffineCoupling::halves(const torch::Tensor& x) const {
  auto parts = x.chunk(2, 1);
  return o_.parity ? std::make_pair(parts[1], parts[0]) : std::make_pair(parts[0], parts[1]);
}

torch::Tensor AffineCoupling::join(const torch::Tensor& cond, const torch::Tensor& trans) const {
  return o_.parity ? torch::cat({trans, cond}, 1) : torch::cat({cond, trans}, 1);
}

torch::Tensor AffineCoupling::forward(const torch::Tensor& x, torch::Tensor& logdet) {
  if (o_.mask == Mask::Channel) {
    auto [c, u] = halves(x);
    auto [s, t] = scale_shift(c);
    logdet = logdet + per_example_sum(s);
    return join(c, u * torch::exp(s) + t);
  }
  torch::Tensor b = mask_for(x), nb = 1.0 - b;
  auto [s0, t0] = scale_shift(x * b);
  torch::Tensor s = s0 * nb, t = t0 * nb;  // identity on the conditioning part
  logdet = logdet + per_example_sum(s);
  return x * torch::exp(s) + t;
}

torch::Tensor AffineCoupling::inverse(const torch::Tensor& y) {
  if (o_.mask == Mask::Channel) {
    auto [c, v] = halves(y);
    auto [s, t] = scale_shift(c);
    return join(c, (v - t) * torch::exp(-s));
  }
  torch::Tensor b = mask_for(y), nb = 1.0 - b;
  auto [s0, t0] = scale_shift(y * b);
  return (y - t0 * nb) * torch::exp(-s0 * nb);
}

// ------------------------------------------------------------------------------------ ActNorm
ActNorm::ActNorm(int64_t channels, bool image) : image_(image) {
  bias_ = register_parameter("bias", torch::zeros(channel_shape(channels, image)));
  log_scale_ = register_parameter("log_scale", torch::zeros(channel_shape(channels, image)));
  initialized_ = register_buffer("initialized", torch::zeros({1}, torch::kBool));
}

torch::Tensor ActNorm::forward(const torch::Tensor& x, torch::Tensor& logdet) {
  if (!initialized()) {
    // Data-dependent init (Glow sec. 3.1): zero mean and unit variance per channel on this batch.
    torch::NoGradGuard ng;
    const std::vector<int64_t> dims =
        image_ ? std::vector<int64_t>{0, 2, 3} : std::vector<int64_t>{0};
    torch::Tensor mean = x.mean(dims, true);
    torch::Tensor std = (x - mean).square().mean(dims, true).sqrt();
    bias_.copy_(-mean);
    log_scale_.copy_(-torch::log(std + 1e-6));
    initialized_.fill_(true);
  }
  logdet = logdet + spatial(x) * log_scale_.sum();
  return (x + bias_) * torch::exp(log_scale_);
}

torch::Tensor ActNorm::inverse(const torch::Tensor& y) {
  return y * torch::exp(-log_scale_) - bias_;
}

// --------------------------------------------------------------------------------- InvConv1x1
InvConv1x1::InvConv1x1(int64_t channels, bool image) : image_(image) {
  const int64_t C = channels;
  torch::NoGradGuard ng;
  torch::Tensor q = std::get<0>(torch::linalg_qr(torch::randn({C, C}, torch::kFloat64)));
  auto [lu, pivots] = torch::linalg_lu_factor(q);
  auto [p, l, u] = torch::lu_unpack(lu, pivots);
  torch::Tensor s = u.diagonal();
  p_ = register_buffer("p", p.to(torch::kFloat32));
  sign_s_ = register_buffer("sign_s", torch::sign(s).to(torch::kFloat32));
  lower_mask_ = register_buffer("lower_mask", torch::tril(torch::ones({C, C}), -1));
  eye_ = register_buffer("eye", torch::eye(C));
  lower_ = register_parameter("lower", l.to(torch::kFloat32));
  upper_ = register_parameter("upper", torch::triu(u, 1).to(torch::kFloat32));
  log_s_ = register_parameter("log_s", torch::log(torch::abs(s)).to(torch::kFloat32));
}

torch::Tensor InvConv1x1::weight() const {
  torch::Tensor l = lower_ * lower_mask_ + eye_;
  torch::Tensor u = upper_ * lower_mask_.t() + torch::diag(sign_s_ * torch::exp(log_s_));
  return torch::matmul(p_, torch::matmul(l, u));
}

torch::Tensor InvConv1x1::apply(const torch::Tensor& x, const torch::Tensor& w) const {
  if (!image_) return torch::matmul(x, w.t());
  return torch::conv2d(x, w.view({w.size(0), w.size(1), 1, 1}));
}

torch::Tensor InvConv1x1::forward(const torch::Tensor& x, torch::Tensor& logdet) {
  logdet = logdet + spatial(x) * log_s_.sum();
  return apply(x, weight());
}

torch::Tensor InvConv1x1::inverse(const torch::Tensor& y) {
  torch::Tensor w = weight();
  return apply(y, torch::inverse(w.to(torch::kFloat64)).to(w.dtype()));
}

// ------------------------------------------------------------------------------------ Squeeze
torch::Tensor Squeeze::forward(const torch::Tensor& x, torch::Tensor&) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  if (H % 2 != 0 || W % 2 != 0)
    throw Error("flow: squeeze needs even height and width, got " + std::to_string(H) + "x" +
                std::to_string(W) + " (use fewer levels)");
  return x.view({N, C, H / 2, 2, W / 2, 2})
      .permute({0, 1, 3, 5, 2, 4})
      .reshape({N, 4 * C, H / 2, W / 2});
}

torch::Tensor Squeeze::inverse(const torch::Tensor& y) {
  const int64_t N = y.size(0), C = y.size(1) / 4, H = y.size(2), W = y.size(3);
  return y.view({N, C, 2, 2, H, W}).permute({0, 1, 4, 2, 5, 3}).reshape({N, C, 2 * H, 2 * W});
}

// -------------------------------------------------------------------------------------- Split
ClassPrior::ClassPrior(int64_t num_classes, std::vector<int64_t> shape) {
  if (num_classes < 1 || shape.empty())
    throw Error("flow: a class prior needs classes and a shape");
  shape[0] *= 2;
  shape.insert(shape.begin(), num_classes);
  table_ = register_parameter("table", torch::zeros(shape));
}

std::pair<torch::Tensor, torch::Tensor> ClassPrior::params(const torch::Tensor& y) const {
  if (!y.defined()) throw Error("flow: a class-conditional flow needs the class labels");
  // x3: Adam moves each entry by about the learning rate per step, and class means several units
  // apart would take thousands of steps to reach; Glow scales its zero-initialised layers' outputs
  // the same way (its "logscale_factor" 3).
  auto ml = (3.0 * table_.index_select(0, y.to(torch::kLong))).chunk(2, 1);
  return {ml[0], ml[1]};
}

torch::Tensor ClassPrior::whiten(const torch::Tensor& h, const torch::Tensor& y,
                                 torch::Tensor& logdet) {
  auto [mean, logs] = params(y);
  logdet = logdet - per_example_sum(logs);
  return (h - mean) * torch::exp(-logs);
}

torch::Tensor ClassPrior::colour(const torch::Tensor& z, const torch::Tensor& y) {
  auto [mean, logs] = params(y);
  return mean + torch::exp(logs) * z;
}

Split::Split(int64_t channels, bool learned_prior, int64_t num_classes,
             std::vector<int64_t> spatial)
    : channels_(channels) {
  if (channels < 2) throw Error("flow: cannot factor out half of 1 channel");
  if (learned_prior)
    conv_ =
        register_module("prior", zero_init(conv(channels - channels / 2, 2 * (channels / 2), 3)));
  if (num_classes > 0) {
    spatial.insert(spatial.begin(), channels / 2);
    class_prior_ =
        register_module("class_prior", std::make_shared<ClassPrior>(num_classes, spatial));
  }
}

std::pair<torch::Tensor, torch::Tensor> Split::prior(const torch::Tensor& kept) {
  auto h = conv_(kept).chunk(2, 1);
  return {h[0], h[1]};
}

std::pair<torch::Tensor, torch::Tensor> Split::forward(const torch::Tensor& x,
                                                       torch::Tensor& logdet,
                                                       const torch::Tensor& y) {
  const int64_t keep = channels_ - channels_ / 2;
  torch::Tensor kept = x.narrow(1, 0, keep), out = x.narrow(1, keep, channels_ / 2);
  if (conv_) {
    auto [mean, logs] = prior(kept);
    logdet = logdet - per_example_sum(logs);
    out = (out - mean) * torch::exp(-logs);
  }
  if (class_prior_) out = class_prior_->whiten(out, y, logdet);
  return {kept, out};
}

torch::Tensor Split::inverse(const torch::Tensor& kept, const torch::Tensor& latent,
                             const torch::Tensor& y) {
  torch::Tensor out = class_prior_ ? class_prior_->colour(latent, y) : latent;
  if (conv_) {
    auto [mean, logs] = prior(kept);
    out = mean + torch::exp(logs) * out;
  }
  return torch::cat({kept, out}, 1);
}

}  // namespace gm::flow
