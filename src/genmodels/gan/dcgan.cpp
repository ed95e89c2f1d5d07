#include "genmodels/gan/dcgan.h"

#include "genmodels/core/error.h"
#include "genmodels/nn/layout.h"

namespace gm::gan {

std::pair<int64_t, int64_t> image_levels(int64_t size) {
  int64_t k = 0, s = size;
  while (s % 2 == 0 && s / 2 >= 3 && k < 5) {
    s /= 2;
    ++k;
  }
  if (k == 0 || s > 7)
    throw Error("images of " + std::to_string(size) + "x" + std::to_string(size) +
                " do not fit the DCGAN networks (they need n * 2^k with n in 3..7, e.g. 28, 32, "
                "48, 64); resize with --set data.image_size=32");
  return {k, s};
}

namespace {

// DCGAN initialisation (Radford et al. 2016, Sec. 4): weights N(0, 0.02), biases zero.
void dcgan_init(torch::Tensor& w, torch::Tensor& b) {
  torch::NoGradGuard no_grad;
  w.normal_(0.0, 0.02);
  if (b.defined()) b.zero_();
}

}  // namespace

// leaky_relu_backward(x, detached x) is x scaled by the slope that the sign of x picks, the sign
// read from a constant copy. Its derivative with respect to x is leaky_relu_backward again (one
// fused kernel), and there is no path to the copy. LibTorch's own leaky_relu has one: in a double
// backward, leaky_relu_backward's derivative with respect to its input (zero everywhere) is
// materialised as a zero tensor and pushed back through the whole forward pass, convolution
// backward included, for nothing.
torch::Tensor leaky_relu_for_penalty(const torch::Tensor& x, double negative_slope) {
  if (!(torch::GradMode::is_enabled() && x.requires_grad()))
    return torch::leaky_relu(x, negative_slope);
  return torch::leaky_relu_backward(x, x.detach(), negative_slope, false);
}

CondBatchNormImpl::CondBatchNormImpl(int64_t c, int64_t num_classes, bool spatial) {
  const bool affine = num_classes <= 0;
  if (spatial)
    bn2d = register_module("bn",
                           torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(c).affine(affine)));
  else
    bn1d = register_module("bn",
                           torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(c).affine(affine)));
  torch::NoGradGuard no_grad;
  if (affine) {
    auto& w = spatial ? bn2d->weight : bn1d->weight;
    w.normal_(1.0, 0.02);
  } else {
    gain = register_module("gain", torch::nn::Embedding(num_classes, c));
    shift = register_module("shift", torch::nn::Embedding(num_classes, c));
    gain->weight.normal_(1.0, 0.02);
    shift->weight.zero_();
  }
}

torch::Tensor CondBatchNormImpl::forward(const torch::Tensor& x, const torch::Tensor& y) {
  torch::Tensor h = bn2d ? bn2d->forward(x) : bn1d->forward(x);
  if (!gain) return h;
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  shape[1] = x.size(1);
  return h * gain->forward(y).view(shape) + shift->forward(y).view(shape);
}

GeneratorImpl::GeneratorImpl(NetOptions o) : o_(std::move(o)) {
  const bool image = o_.shape.size() == 3;
  const int64_t K = o_.num_classes;
  if (image) {
    if (o_.shape[1] != o_.shape[2])
      throw Error("the DCGAN networks take square images, got " + std::to_string(o_.shape[1]) +
                  "x" + std::to_string(o_.shape[2]) + "; resize with --set data.image_size=N");
    auto [k, s0] = image_levels(o_.shape[1]);
    s0_ = s0;
    // Channels per level: g * 2^(k-1-i) at level i (s0 * 2^i), the image's at level k.
    auto channels = [&](int64_t i) { return i == k ? o_.shape[0] : o_.g_channels << (k - 1 - i); };
    c0_ = channels(0);
    project = register_module("project", torch::nn::Linear(o_.latent, c0_ * s0 * s0));
    dcgan_init(project->weight, project->bias);
    norms_.push_back(register_module("norm0", CondBatchNorm(c0_, K, true)));
    for (int64_t i = 0; i < k; ++i) {
      ups_.push_back(
          register_module("up" + std::to_string(i), nn::UpConv2x(channels(i), channels(i + 1))));
      dcgan_init(ups_.back()->weight, ups_.back()->bias);
      ups_.back()->channels_last = o_.channels_last;
      if (i + 1 < k)
        norms_.push_back(register_module("norm" + std::to_string(i + 1),
                                         CondBatchNorm(channels(i + 1), K, true)));
    }
  } else {
    int64_t in = o_.latent;
    for (int64_t i = 0; i < o_.mlp_depth; ++i) {
      hidden_.push_back(
          register_module("hidden" + std::to_string(i), torch::nn::Linear(in, o_.mlp_hidden)));
      norms_.push_back(
          register_module("norm" + std::to_string(i), CondBatchNorm(o_.mlp_hidden, K, false)));
      in = o_.mlp_hidden;
    }
    out_ = register_module("out", torch::nn::Linear(in, o_.shape[0]));
  }
}

torch::Tensor GeneratorImpl::forward(const torch::Tensor& z, const torch::Tensor& y) {
  if (project) {
    torch::Tensor h = project->forward(z).view({z.size(0), c0_, s0_, s0_});
    h = torch::relu(norms_[0]->forward(h, y));
    for (size_t i = 0; i < ups_.size(); ++i) {
      h = ups_[i]->forward(h);
      h = i + 1 < ups_.size() ? torch::relu(norms_[i + 1]->forward(h, y)) : torch::tanh(h);
    }
    return o_.channels_last ? h.contiguous() : h;
  }
  torch::Tensor h = z;
  for (size_t i = 0; i < hidden_.size(); ++i)
    h = torch::relu(norms_[i]->forward(hidden_[i]->forward(h), y));
  return out_->forward(h);
}

DiscriminatorImpl::DiscriminatorImpl(NetOptions o) : o_(std::move(o)) {
  const bool sn = o_.spectral_norm;
  int64_t features = 0;
  if (o_.shape.size() == 3) {
    auto [k, s0] = image_levels(o_.shape[1]);
    int64_t in = o_.shape[0];
    for (int64_t i = 0; i < k; ++i) {
      const int64_t out = o_.d_channels << i;
      convs_.push_back(register_module("conv" + std::to_string(i), SNConv2d(in, out, 4, 2, 1, sn)));
      in = out;
    }
    features = in * s0 * s0;
    if (o_.channels_last) nn::set_conv_layout(*this, true);
  } else {
    int64_t in = o_.shape[0];
    for (int64_t i = 0; i < o_.mlp_depth; ++i) {
      hidden_.push_back(
          register_module("hidden" + std::to_string(i), SNLinear(in, o_.mlp_hidden, sn)));
      in = o_.mlp_hidden;
    }
    features = in;
  }
  head = register_module("head", SNLinear(features, 1, sn));
  if (o_.num_classes > 0) {
    embed = register_module("embed", torch::nn::Embedding(o_.num_classes, features));
    torch::NoGradGuard no_grad;
    embed->weight.normal_(0.0, 0.02);
  }
}

torch::Tensor DiscriminatorImpl::forward(const torch::Tensor& x, const torch::Tensor& y) {
  // An input that requires grad is differentiated twice (a gradient penalty, R1): WGAN-GP's critic
  // steps get about 20% faster with leaky_relu_for_penalty (bench/gan_bench). First-order passes
  // keep LibTorch's leaky_relu, a little faster there.
  const bool twice = x.requires_grad();
  auto act = [twice](const torch::Tensor& h) {
    return twice ? leaky_relu_for_penalty(h, 0.2) : torch::leaky_relu(h, 0.2);
  };
  torch::Tensor h = x;
  if (o_.channels_last && !convs_.empty()) {
    // A checkpoint load may have replaced the weights with NCHW tensors (the last convolution's
    // layout is unambiguous when it has several input channels).
    const torch::Tensor& w = convs_.back()->weight;
    if (w.size(1) > 1 && !nn::is_channels_last(w)) nn::set_conv_layout(*this, true);
    h = nn::strictly_channels_last(x);
  }
  for (auto& c : convs_) h = act(c->forward(h));
  for (auto& l : hidden_) h = act(l->forward(h));
  h = h.flatten(1).to(torch::kFloat);
  torch::Tensor out = head->forward(h).squeeze(1);
  // Projection (Miyato & Koyama 2018 eq. 3): + embed(y)^T phi(x).
  if (embed && y.defined()) out = out + (embed->forward(y) * h).sum(1);
  return out;
}

}  // namespace gm::gan
