#include "genmodels/gan/translation_nets.h"

#include <algorithm>

#include "genmodels/core/error.h"
#include "genmodels/nn/fused_norm.h"
#include "genmodels/nn/reflect_pad.h"

namespace gm::gan {
namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad));
}

torch::Tensor reflect(const torch::Tensor& x, int64_t p) { return nn::reflection_pad2d(x, p); }

torch::Tensor lrelu(const torch::Tensor& x) { return torch::leaky_relu(x, 0.2); }

}  // namespace

NormKind parse_norm(const std::string& name) {
  if (name == "batch") return NormKind::Batch;
  if (name == "instance") return NormKind::Instance;
  throw Error("model.norm must be batch or instance, got '" + name + "'");
}

int64_t patch_receptive_field(int64_t layers) {
  int64_t r = 1 + 3 + 3;  // the two stride-1 4x4 convolutions on top
  for (int64_t i = 0; i < layers; ++i) r = 2 * (r - 1) + 4;
  return r;
}

int64_t patch_layers_for(int64_t size) {
  int64_t layers = 1;
  while (patch_receptive_field(layers + 1) <= size / 2) ++layers;
  return layers;
}

Norm2dImpl::Norm2dImpl(NormKind kind, int64_t channels) {
  if (kind == NormKind::Batch)
    bn = register_module("bn", torch::nn::BatchNorm2d(channels));
  else  // CycleGAN's: no affine parameters, no running statistics
    in = register_module("inorm", torch::nn::InstanceNorm2d(
                                      torch::nn::InstanceNorm2dOptions(channels).affine(false)));
}

torch::Tensor Norm2dImpl::forward(const torch::Tensor& x, bool relu) {
  if (bn) return relu ? torch::relu(bn->forward(x)) : bn->forward(x);
  // Instance norm is group norm with one channel per group; no affine parameters.
  return nn::group_norm_act(x, x.size(1), {}, {}, in->options.eps(),
                            relu ? nn::NormActivation::ReLU : nn::NormActivation::None);
}

UnetGeneratorImpl::UnetGeneratorImpl(UnetOptions o) : o_(o) {
  int64_t k = 0, s = o_.size;
  while (s % 2 == 0 && s / 2 >= 1 && k < 8) {
    s /= 2;
    ++k;
  }
  if (k == 0)
    throw Error("the U-Net generator needs an even image size (n * 2^k), got " +
                std::to_string(o_.size) + "; resize with --set data.image_size=N");
  auto ch = [&](int64_t i) { return std::min(o_.channels << i, o_.max_channels); };
  for (int64_t i = 0; i < k; ++i) {
    downs_.push_back(register_module("down" + std::to_string(i),
                                     conv(i == 0 ? o_.in_channels : ch(i - 1), ch(i), 4, 2, 1)));
    const bool norm = i > 0 && !(i == k - 1 && s == 1);  // none first, none innermost at 1x1
    down_norms_.push_back(
        norm ? register_module("down_norm" + std::to_string(i), Norm2d(o_.norm, ch(i)))
             : Norm2d(nullptr));
  }
  if (s > 1) {
    mid_ = register_module("mid", conv(ch(k - 1), ch(k - 1), 3, 1, 1));
    mid2_ = register_module(
        "mid2", torch::nn::Conv2d(
                    torch::nn::Conv2dOptions(ch(k - 1), ch(k - 1), 3).padding(2).dilation(2)));
    for (int64_t b = 0; b < o_.blocks; ++b)
      mid_blocks_.push_back(
          register_module("mid_block" + std::to_string(b), ResnetBlock(ch(k - 1), o_.norm)));
  }
  ups_.resize(k, nullptr);
  up_norms_.resize(k, nullptr);
  for (int64_t i = k - 1; i >= 0; --i) {
    const int64_t in = (i == k - 1 && !mid_) ? ch(i) : 2 * ch(i);
    const int64_t out = i == 0 ? o_.out_channels : ch(i - 1);
    ups_[i] = register_module("up" + std::to_string(i), nn::UpConv2x(in, out));
    if (i > 0) up_norms_[i] = register_module("up_norm" + std::to_string(i), Norm2d(o_.norm, out));
  }
}

torch::Tensor UnetGeneratorImpl::forward(const torch::Tensor& x) {
  const int64_t k = levels();
  std::vector<torch::Tensor> d(k);
  torch::Tensor h = x;
  for (int64_t i = 0; i < k; ++i) {
    h = downs_[i]->forward(i == 0 ? h : lrelu(h));
    if (down_norms_[i]) h = down_norms_[i]->forward(h);
    d[i] = h;
  }
  // The innermost block (the bottleneck convolution, or the 1x1 level) counts as level
  // `inner`; dropout acts in the dropout_layers decoder levels just outside it, never the output.
  const int64_t inner = mid_ ? k : k - 1;
  if (mid_) {
    torch::Tensor m = mid2_->forward(torch::relu(mid_->forward(lrelu(d[k - 1]))));
    for (auto& block : mid_blocks_) m = block->forward(m);
    h = torch::cat({d[k - 1], m}, 1);
  } else {
    h = d[k - 1];
  }
  for (int64_t i = k - 1; i >= 0; --i) {
    if (i < k - 1) h = torch::cat({d[i], h}, 1);
    h = ups_[i]->forward(torch::relu(h));
    if (i == 0) return torch::tanh(h);
    h = up_norms_[i]->forward(h);
    if (o_.dropout > 0 && i >= std::max<int64_t>(1, inner - o_.dropout_layers) && i < inner)
      h = torch::dropout(h, o_.dropout, is_training() || o_.test_dropout);
  }
  return h;
}

ResnetBlockImpl::ResnetBlockImpl(int64_t c, NormKind norm)
    : conv1(register_module("conv1", conv(c, c, 3, 1, 0))),
      conv2(register_module("conv2", conv(c, c, 3, 1, 0))),
      norm1(register_module("norm1", Norm2d(norm, c))),
      norm2(register_module("norm2", Norm2d(norm, c))) {}

torch::Tensor ResnetBlockImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = norm1->forward(conv1->forward(reflect(x, 1)), /*relu=*/true);
  return x + norm2->forward(conv2->forward(reflect(h, 1)));
}

ResnetGeneratorImpl::ResnetGeneratorImpl(ResnetOptions o) {
  if (o.size % 4 != 0 || o.size < 8)
    throw Error(
        "the ResNet generator down-samples twice: the image size must be a multiple of 4 "
        "(>= 8), got " +
        std::to_string(o.size) + "; resize with --set data.image_size=N");
  const int64_t k = o.channels;
  in_ = register_module("conv_in", conv(o.in_channels, k, 7, 1, 0));
  n_in_ = register_module("n_in", Norm2d(o.norm, k));
  down1_ = register_module("down1", conv(k, 2 * k, 3, 2, 1));
  n_down1_ = register_module("n_down1", Norm2d(o.norm, 2 * k));
  down2_ = register_module("down2", conv(2 * k, 4 * k, 3, 2, 1));
  n_down2_ = register_module("n_down2", Norm2d(o.norm, 4 * k));
  for (int64_t i = 0; i < o.blocks; ++i)
    blocks_.push_back(register_module("block" + std::to_string(i), ResnetBlock(4 * k, o.norm)));
  up1_ = register_module("up1", nn::UpConv2x(4 * k, 2 * k));
  n_up1_ = register_module("n_up1", Norm2d(o.norm, 2 * k));
  up2_ = register_module("up2", nn::UpConv2x(2 * k, k));
  n_up2_ = register_module("n_up2", Norm2d(o.norm, k));
  out_ = register_module("conv_out", conv(k, o.out_channels, 7, 1, 0));
}

torch::Tensor ResnetGeneratorImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = n_in_->forward(in_->forward(reflect(x, 3)), /*relu=*/true);
  h = n_down1_->forward(down1_->forward(h), /*relu=*/true);
  h = n_down2_->forward(down2_->forward(h), /*relu=*/true);
  for (auto& b : blocks_) h = b->forward(h);
  h = n_up1_->forward(up1_->forward(h), /*relu=*/true);
  h = n_up2_->forward(up2_->forward(h), /*relu=*/true);
  return torch::tanh(out_->forward(reflect(h, 3)));
}

PatchDiscriminatorImpl::PatchDiscriminatorImpl(PatchOptions o) {
  if (o.layers < 1) throw Error("model.d_layers must be >= 1 (0 = by image size)");
  auto ch = [&](int64_t i) { return o.channels * std::min<int64_t>(int64_t{1} << i, 8); };
  int64_t in = o.in_channels;
  for (int64_t i = 0; i <= o.layers + 1; ++i) {
    const bool last = i == o.layers + 1;
    const int64_t out = last ? 1 : ch(i);
    const int64_t stride = i < o.layers ? 2 : 1;
    convs_.push_back(register_module("conv" + std::to_string(i), conv(in, out, 4, stride, 1)));
    norms_.push_back(i > 0 && !last
                         ? register_module("norm" + std::to_string(i), Norm2d(o.norm, out))
                         : Norm2d(nullptr));
    in = out;
  }
}

torch::Tensor PatchDiscriminatorImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = x;
  for (size_t i = 0; i < convs_.size(); ++i) {
    h = convs_[i]->forward(h);
    if (i + 1 == convs_.size()) break;
    if (norms_[i]) h = norms_[i]->forward(h);
    h = lrelu(h);
  }
  return h;
}

void init_translation_weights(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (auto& mod : m.modules(/*include_self=*/true)) {
    if (auto* c = mod->as<torch::nn::Conv2d>()) {
      c->weight.normal_(0.0, 0.02);
      if (c->bias.defined()) c->bias.zero_();
    } else if (auto* u = mod->as<nn::UpConv2x>()) {
      u->weight.normal_(0.0, 0.02);
      if (u->bias.defined()) u->bias.zero_();
    } else if (auto* b = mod->as<torch::nn::BatchNorm2d>()) {
      b->weight.normal_(1.0, 0.02);
      b->bias.zero_();
    }
  }
}

}  // namespace gm::gan
