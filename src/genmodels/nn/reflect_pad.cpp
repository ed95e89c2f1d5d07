#include "genmodels/nn/reflect_pad.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

namespace gm::nn {
namespace {

// Index k of a padded axis of length n + 2 pad, mirrored into [0, n).
inline int64_t reflect(int64_t k, int64_t n) { return k < 0 ? -k : (k >= n ? 2 * (n - 1) - k : k); }

// Planes per task: about 16K elements of work, so small planes are batched.
int64_t grain(int64_t plane) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(plane, 1)); }

template <typename T>
void pad_forward(const T* x, T* y, int64_t planes, int64_t h, int64_t w, int64_t p) {
  const int64_t wo = w + 2 * p, ho = h + 2 * p;
  at::parallel_for(0, planes, grain(ho * wo), [&](int64_t begin, int64_t end) {
    for (int64_t pl = begin; pl < end; ++pl) {
      const T* src = x + pl * h * w;
      T* dst = y + pl * ho * wo;
      for (int64_t i = 0; i < ho; ++i) {
        const T* s = src + reflect(i - p, h) * w;
        T* d = dst + i * wo;
        for (int64_t j = 0; j < p; ++j) d[j] = s[p - j];
        std::copy(s, s + w, d + p);
        for (int64_t j = 0; j < p; ++j) d[p + w + j] = s[w - 2 - j];
      }
    }
  });
}

// Each input pixel sums the output gradients of every padded position that copied it: the
// interior rows are copied (their middle columns map one to one), then the mirrored columns and
// rows are added where they came from.
template <typename T>
void pad_backward(const T* g, T* gx, int64_t planes, int64_t h, int64_t w, int64_t p) {
  using Acc = at::opmath_type<T>;
  const int64_t wo = w + 2 * p, ho = h + 2 * p;
  auto add_row = [&](T* d, const T* s, bool middle) {  // s: a padded row, d: its source row
    if (middle)
      for (int64_t j = 0; j < w; ++j) d[j] = static_cast<T>(Acc(d[j]) + Acc(s[p + j]));
    for (int64_t j = 0; j < p; ++j) {
      d[p - j] = static_cast<T>(Acc(d[p - j]) + Acc(s[j]));
      d[w - 2 - j] = static_cast<T>(Acc(d[w - 2 - j]) + Acc(s[p + w + j]));
    }
  };
  at::parallel_for(0, planes, grain(ho * wo), [&](int64_t begin, int64_t end) {
    for (int64_t pl = begin; pl < end; ++pl) {
      const T* src = g + pl * ho * wo;
      T* dst = gx + pl * h * w;
      for (int64_t r = 0; r < h; ++r) {
        const T* s = src + (r + p) * wo;
        std::copy(s + p, s + p + w, dst + r * w);
        add_row(dst + r * w, s, false);
      }
      for (int64_t i = 0; i < p; ++i) add_row(dst + reflect(i - p, h) * w, src + i * wo, true);
      for (int64_t i = p + h; i < ho; ++i) add_row(dst + reflect(i - p, h) * w, src + i * wo, true);
    }
  });
}

struct ReflectionPad : torch::autograd::Function<ReflectionPad> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               int64_t pad) {
    ctx->saved_data["sizes"] = x.sizes().vec();
    ctx->saved_data["pad"] = pad;
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    torch::Tensor y = torch::empty({n, c, h + 2 * pad, w + 2 * pad}, x.options());
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "reflection_pad2d", [&] {
      pad_forward(x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), n * c, h, w, pad);
    });
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto sizes = ctx->saved_data["sizes"].toIntVector();
    const int64_t pad = ctx->saved_data["pad"].toInt();
    const torch::Tensor g = grads[0].contiguous();
    if (torch::GradMode::is_enabled()) {  // create_graph: LibTorch's differentiable backward
      const torch::Tensor like = torch::empty(sizes, g.options());
      return {torch::reflection_pad2d_backward(g, like, {pad, pad, pad, pad}), {}};
    }
    torch::Tensor gx = torch::empty(sizes, g.options());
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, g.scalar_type(), "reflection_pad2d_backward",
                                   [&] {
                                     pad_backward(g.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(),
                                                  sizes[0] * sizes[1], sizes[2], sizes[3], pad);
                                   });
    return {gx, {}};
  }
};

}  // namespace

torch::Tensor reflection_pad2d(const torch::Tensor& x, int64_t pad) {
  TORCH_CHECK(x.dim() == 4 && pad >= 0 && pad < x.size(2) && pad < x.size(3),
              "reflection_pad2d: pad ", pad, " must be smaller than the image (", x.sizes(), ")");
  const bool fast = x.device().is_cpu() && x.is_contiguous() &&
                    (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble ||
                     x.scalar_type() == torch::kBFloat16);
  if (!fast || pad == 0) return torch::reflection_pad2d(x, {pad, pad, pad, pad});
  return ReflectionPad::apply(x, pad);
}

}  // namespace gm::nn
