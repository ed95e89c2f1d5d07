#include "genmodels/nn/linear.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>

namespace gm::nn {

namespace {

// Products below this many multiply-adds stay one BLAS call (thread wake-up costs more).
constexpr int64_t kMinParallelMacs = int64_t(1) << 20;

bool use_parallel(const torch::Tensor& x, const torch::Tensor& w) {
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat32 &&
         w.scalar_type() == torch::kFloat32 && !at::autocast::is_cpu_enabled() &&
         at::get_num_threads() > 1 && !at::in_parallel_region();
}

class LinearFunction : public torch::autograd::Function<LinearFunction> {
 public:
  // x2d W^T (the bias is added outside: an undefined tensor cannot be a Function input).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x2d,
                               const torch::Tensor& weight) {
    ctx->save_for_backward({x2d, weight});
    return parallel_mm(x2d, weight.t());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &w = saved[1];
    const torch::Tensor g = grads[0].contiguous();
    torch::Tensor gx, gw;
    if (ctx->needs_input_grad(0)) gx = parallel_mm(g, w);
    if (ctx->needs_input_grad(1)) gw = parallel_mm(g.t(), x);
    return {gx, gw};
  }
};

}  // namespace

torch::Tensor parallel_mm(const torch::Tensor& a, const torch::Tensor& b) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  const int64_t threads = at::get_num_threads();
  if (threads <= 1 || m < 2 * threads || m * k * n < kMinParallelMacs || at::in_parallel_region())
    return torch::mm(a, b);
  torch::Tensor out = torch::empty({m, n}, a.options());
  // One block of output rows per thread; each block is a contiguous slice of `out`.
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    torch::NoGradGuard no_grad;  // grad mode is per thread; the products are not recorded
    for (int64_t t = begin; t < end; ++t) {
      const int64_t r0 = m * t / threads, r1 = m * (t + 1) / threads;
      torch::Tensor block = out.narrow(0, r0, r1 - r0);
      torch::mm_out(block, a.narrow(0, r0, r1 - r0), b);
    }
  });
  return out;
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight,
                     const torch::Tensor& bias) {
  if (!use_parallel(x, weight) || (bias.defined() && bias.scalar_type() != torch::kFloat32))
    return torch::linear(x, weight, bias);
  const int64_t in = x.size(-1);
  torch::Tensor x2d = x.reshape({-1, in});
  torch::Tensor y = LinearFunction::apply(x2d, weight);
  if (bias.defined()) y = y + bias;
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = weight.size(0);
  return y.view(shape);
}

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool with_bias) {
  // torch::nn::Linear's own initialisation, so a seed gives the same weights.
  torch::nn::Linear ref(torch::nn::LinearOptions(in_features, out_features).bias(with_bias));
  weight = register_parameter("weight", ref->weight.detach().clone());
  if (with_bias) bias = register_parameter("bias", ref->bias.detach().clone());
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) { return linear(x, weight, bias); }

}  // namespace gm::nn
