#include "genmodels/gan/spectral_norm.h"

#include <cmath>

namespace gm::gan {

torch::Tensor spectral_sigma(const torch::Tensor& weight, torch::Tensor& u, torch::Tensor& v,
                             int64_t iterations) {
  const torch::Tensor w = weight.flatten(1);
  if (iterations > 0) {
    torch::NoGradGuard no_grad;
    for (int64_t i = 0; i < iterations; ++i) {
      // Alg. 1: v <- W^T u / ||W^T u||, u <- W v / ||W v||
      v.copy_(torch::nn::functional::normalize(
          torch::mv(w.t(), u), torch::nn::functional::NormalizeFuncOptions().dim(0).eps(1e-12)));
      u.copy_(torch::nn::functional::normalize(
          torch::mv(w, v), torch::nn::functional::NormalizeFuncOptions().dim(0).eps(1e-12)));
    }
  }
  // Clones: later power steps update u, v in place while this graph may still need them.
  return torch::dot(u.clone(), torch::mv(w, v.clone()));
}

namespace {

// Unit random vectors for the power iteration, from the default generator.
void init_uv(torch::nn::Module& m, torch::Tensor& u, torch::Tensor& v, int64_t rows, int64_t cols) {
  u = m.register_buffer(
      "u", torch::nn::functional::normalize(torch::randn({rows}),
                                            torch::nn::functional::NormalizeFuncOptions().dim(0)));
  v = m.register_buffer(
      "v", torch::nn::functional::normalize(torch::randn({cols}),
                                            torch::nn::functional::NormalizeFuncOptions().dim(0)));
}

}  // namespace

SNConv2dImpl::SNConv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride_,
                           int64_t padding_, bool sn_)
    : stride(stride_), padding(padding_), sn(sn_) {
  // DCGAN initialisation (Radford et al. 2016, Sec. 4): N(0, 0.02), zero bias.
  weight = register_parameter("weight", torch::randn({out, in, kernel, kernel}) * 0.02);
  bias = register_parameter("bias", torch::zeros({out}));
  if (sn) init_uv(*this, u, v, out, in * kernel * kernel);
}

torch::Tensor SNConv2dImpl::effective_weight() {
  return sn ? weight / spectral_sigma(weight, u, v, 0) : weight;
}

torch::Tensor SNConv2dImpl::forward(const torch::Tensor& x) {
  torch::Tensor w = sn ? weight / spectral_sigma(weight, u, v, is_training() ? 1 : 0) : weight;
  return torch::conv2d(x, w, bias, stride, padding);
}

SNLinearImpl::SNLinearImpl(int64_t in, int64_t out, bool sn_, bool with_bias) : sn(sn_) {
  weight = register_parameter("weight", torch::randn({out, in}) * 0.02);
  if (with_bias) bias = register_parameter("bias", torch::zeros({out}));
  if (sn) init_uv(*this, u, v, out, in);
}

torch::Tensor SNLinearImpl::effective_weight() {
  return sn ? weight / spectral_sigma(weight, u, v, 0) : weight;
}

torch::Tensor SNLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor w = sn ? weight / spectral_sigma(weight, u, v, is_training() ? 1 : 0) : weight;
  return torch::linear(x, w, bias);
}

}  // namespace gm::gan
