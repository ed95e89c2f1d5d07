// The fused GroupNorm + scale/shift + activation operation (fused_norm.h): argument checks, the
// reference formula, the autograd function over the raw kernels, and the run-time choice of
// instruction set.
#include "genmodels/nn/fused_norm.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "genmodels/core/error.h"
#include "genmodels/nn/kernels/group_norm_silu.h"

namespace gm::nn {
namespace {

static_assert(static_cast<int>(NormActivation::SiLU) == int(kernels::GnActivation::SiLU) &&
              static_cast<int>(NormActivation::ReLU) == int(kernels::GnActivation::ReLU) &&
              static_cast<int>(NormActivation::None) == int(kernels::GnActivation::None));

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The table of the best instruction set this CPU runs; ATEN_CPU_CAPABILITY (LibTorch's own
// switch: default, avx2, avx512) caps it, as it does for LibTorch's kernels.
const kernels::GnSiluKernels& cpu_kernels() {
  static const kernels::GnSiluKernels k = [] {
    __builtin_cpu_init();
    const char* cap = std::getenv("ATEN_CPU_CAPABILITY");
    const std::string want = cap ? cap : "";
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (avx512 && (want.empty() || want == "avx512")) return kernels::gn_silu_kernels_avx512();
    if (avx2 && want != "default") return kernels::gn_silu_kernels_avx2();
    return kernels::gn_silu_kernels_default();
  }();
  return k;
}

std::atomic<bool>& fused_flag() {
  static std::atomic<bool> on = [] {
    const char* v = std::getenv("GENMODELS_FUSED_KERNELS");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

struct Dims {
  int64_t n, c, hw;
};

// N, C and the per-channel count of an x with x.dim() >= 2.
Dims dims_of(const torch::Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1);
  return {n, c, n * c == 0 ? 0 : x.numel() / (n * c)};
}

// Checks the arguments of both paths; returns N, C and the per-channel element count.
Dims check_args(const torch::Tensor& x, int64_t groups, const torch::Tensor& weight,
                const torch::Tensor& bias, double eps, const torch::Tensor& scale,
                const torch::Tensor& shift) {
  const char* who = "group_norm_silu";
  if (!x.defined() || x.dim() < 2)
    throw Error(std::string(who) + ": x must be N x C x ... (got " +
                (x.defined() ? c10::str(x.sizes()) : std::string("undefined")) + ")");
  const int64_t n = x.size(0), c = x.size(1);
  if (groups < 1 || c % groups != 0)
    throw Error(std::string(who) + ": groups = " + std::to_string(groups) +
                " must divide C = " + std::to_string(c));
  if (!(eps > 0.0)) throw Error(std::string(who) + ": eps = " + num(eps) + " must be > 0");
  for (const auto* p : {&weight, &bias}) {
    if (p->defined() && p->numel() != c)
      throw Error(std::string(who) + ": weight/bias have " + std::to_string(p->numel()) +
                  " elements, expected C = " + std::to_string(c));
  }
  if (scale.defined() != shift.defined())
    throw Error(std::string(who) + ": scale and shift must be given together");
  for (const auto* p : {&scale, &shift}) {
    if (p->defined() && p->numel() != n * c)
      throw Error(std::string(who) + ": scale/shift have shape " + c10::str(p->sizes()) +
                  ", expected N x C = " + std::to_string(n) + " x " + std::to_string(c));
  }
  return dims_of(x);
}

// The layout the kernels run on: NCHW when x is contiguous, NHWC when it is channels-last (and not
// both, as with 1 x 1 images), and neither otherwise.
enum class Layout { Nchw, Nhwc, Other };
Layout layout_of(const torch::Tensor& x) {
  if (x.is_contiguous()) return Layout::Nchw;
  if (x.dim() == 4 && x.is_contiguous(torch::MemoryFormat::ChannelsLast)) return Layout::Nhwc;
  return Layout::Other;
}
torch::MemoryFormat memory_format(Layout l) {
  return l == Layout::Nhwc ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
}

kernels::GnSiluShape kernel_shape(const Dims& d, int64_t groups, double eps, int64_t act,
                                  Layout layout) {
  kernels::GnSiluShape s;
  s.channels_last = layout == Layout::Nhwc;
  s.act = static_cast<kernels::GnActivation>(act);
  s.n = d.n;
  s.c = d.c;
  s.hw = d.hw;
  s.groups = groups;
  s.eps = static_cast<float>(eps);
  return s;
}

const float* ptr_or_null(const torch::Tensor& t) {
  return t.defined() ? t.data_ptr<float>() : nullptr;
}

const c10::BFloat16* bf16_ptr(const torch::Tensor& t) {
  return reinterpret_cast<const c10::BFloat16*>(t.data_ptr<at::BFloat16>());
}
c10::BFloat16* bf16_ptr(torch::Tensor& t) {
  return reinterpret_cast<c10::BFloat16*>(t.data_ptr<at::BFloat16>());
}

// LibTorch 1.13's Function::apply cannot take undefined tensors: "no scale/shift" travels as an
// empty tensor and becomes undefined again inside.
torch::Tensor present(const torch::Tensor& t) {
  return t.defined() && t.numel() > 0 ? t : torch::Tensor();
}

// Autograd over the raw kernels. Inputs: x (contiguous, fp32 or bf16), weight and bias (C, fp32),
// scale and shift (N x C fp32, or empty). Saves x and the group statistics, not the output.
struct GroupNormSiluFn : public torch::autograd::Function<GroupNormSiluFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               const torch::Tensor& scale_in, const torch::Tensor& shift_in,
                               int64_t groups, double eps, int64_t act) {
    const torch::Tensor scale = present(scale_in), shift = present(shift_in);
    const Dims d = dims_of(x);           // checked by group_norm_act
    const Layout layout = layout_of(x);  // Nchw or Nhwc (group_norm_act)
    const kernels::GnSiluShape s = kernel_shape(d, groups, eps, act, layout);
    const auto fopts = x.options().dtype(torch::kFloat);
    torch::Tensor mean = torch::empty({d.n, groups}, fopts), rstd = torch::empty_like(mean);
    torch::Tensor y = torch::empty_like(x, memory_format(layout));
    const auto& k = cpu_kernels();
    if (x.numel() > 0) {
      if (x.scalar_type() == torch::kFloat) {
        k.forward_f32(x.data_ptr<float>(), weight.data_ptr<float>(), bias.data_ptr<float>(),
                      ptr_or_null(scale), ptr_or_null(shift), y.data_ptr<float>(),
                      mean.data_ptr<float>(), rstd.data_ptr<float>(), s);
      } else {
        k.forward_bf16(bf16_ptr(x), weight.data_ptr<float>(), bias.data_ptr<float>(),
                       ptr_or_null(scale), ptr_or_null(shift), bf16_ptr(y), mean.data_ptr<float>(),
                       rstd.data_ptr<float>(), s);
      }
    }
    ctx->save_for_backward({x, weight, bias, scale_in, shift_in, mean, rstd});
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["act"] = act;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1], &bias = saved[2], &mean = saved[5],
                        &rstd = saved[6];
    const torch::Tensor scale = present(saved[3]), shift = present(saved[4]);
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const double eps = ctx->saved_data["eps"].toDouble();
    const int64_t act = ctx->saved_data["act"].toInt();
    if (torch::GradMode::is_enabled())
      return backward_differentiable(x, weight, bias, scale, shift, groups, eps, act, grads[0]);
    const Dims d = dims_of(x);  // checked by group_norm_act
    const Layout layout = layout_of(x);
    const kernels::GnSiluShape s = kernel_shape(d, groups, eps, act, layout);
    const torch::Tensor dy = grads[0].to(x.scalar_type()).contiguous(memory_format(layout));
    torch::Tensor dx = torch::empty_like(x, memory_format(layout));
    const auto fopts = x.options().dtype(torch::kFloat);
    torch::Tensor dsum = torch::zeros({d.n, d.c}, fopts), dxhat = torch::zeros_like(dsum);
    const auto& k = cpu_kernels();
    if (x.numel() > 0) {
      if (x.scalar_type() == torch::kFloat) {
        k.backward_f32(dy.data_ptr<float>(), x.data_ptr<float>(), weight.data_ptr<float>(),
                       bias.data_ptr<float>(), ptr_or_null(scale), ptr_or_null(shift),
                       mean.data_ptr<float>(), rstd.data_ptr<float>(), dx.data_ptr<float>(),
                       dsum.data_ptr<float>(), dxhat.data_ptr<float>(), s);
      } else {
        k.backward_bf16(bf16_ptr(dy), bf16_ptr(x), weight.data_ptr<float>(), bias.data_ptr<float>(),
                        ptr_or_null(scale), ptr_or_null(shift), mean.data_ptr<float>(),
                        rstd.data_ptr<float>(), bf16_ptr(dx), dsum.data_ptr<float>(),
                        dxhat.data_ptr<float>(), s);
      }
    }
    // z = (w xhat + b) f + shift with f = 1 + scale: the parameter gradients from the sums.
    const torch::Tensor f = scale.defined() ? scale + 1.0 : torch::ones_like(dsum);
    torch::Tensor dscale, dshift;
    if (scale.defined()) {
      dscale = weight.unsqueeze(0) * dxhat + bias.unsqueeze(0) * dsum;
      dshift = dsum;
    }
    return {dx, (dxhat * f).sum(0), (dsum * f).sum(0), dscale, dshift, {}, {}, {}};
  }

  // create_graph = true (a gradient penalty through the network): the gradient as a graph of
  // LibTorch's differentiable ops, so it can be differentiated again.
  static variable_list backward_differentiable(const torch::Tensor& x, const torch::Tensor& weight,
                                               const torch::Tensor& bias,
                                               const torch::Tensor& scale,
                                               const torch::Tensor& shift, int64_t groups,
                                               double eps, int64_t act, const torch::Tensor& dy) {
    const std::vector<torch::Tensor> all = {x, weight, bias, scale, shift};
    std::vector<torch::Tensor> wrt;
    for (const auto& t : all)
      if (t.defined() && t.requires_grad()) wrt.push_back(t);
    variable_list out(all.size() + 3);
    if (wrt.empty()) return out;
    const torch::Tensor y = group_norm_act_reference(
        x, groups, weight, bias, eps, static_cast<NormActivation>(act), scale, shift);
    const auto g = torch::autograd::grad({y}, wrt, {dy}, /*retain_graph=*/true,
                                         /*create_graph=*/true, /*allow_unused=*/true);
    size_t j = 0;
    for (size_t i = 0; i < all.size(); ++i)
      if (all[i].defined() && all[i].requires_grad()) out[i] = g[j++];
    return out;
  }
};

}  // namespace

torch::Tensor group_norm_act_reference(const torch::Tensor& x, int64_t groups,
                                       const torch::Tensor& weight, const torch::Tensor& bias,
                                       double eps, NormActivation act, const torch::Tensor& scale,
                                       const torch::Tensor& shift) {
  const Dims d = check_args(x, groups, weight, bias, eps, scale, shift);
  torch::Tensor h = torch::group_norm(x.to(torch::kFloat), groups, weight, bias, eps);
  if (scale.defined()) {
    std::vector<int64_t> shape = {d.n, d.c};
    shape.resize(x.dim(), 1);
    h = h * (scale.to(torch::kFloat).reshape(shape) + 1.0) + shift.to(torch::kFloat).reshape(shape);
  }
  if (act == NormActivation::SiLU) h = torch::silu(h);
  if (act == NormActivation::ReLU) h = torch::relu(h);
  return h.to(x.scalar_type());
}

torch::Tensor group_norm_act(const torch::Tensor& x, int64_t groups, const torch::Tensor& weight,
                             const torch::Tensor& bias, double eps, NormActivation act,
                             const torch::Tensor& scale, const torch::Tensor& shift) {
  const Dims d = check_args(x, groups, weight, bias, eps, scale, shift);
  auto is_f32 = [](const torch::Tensor& t) {
    return !t.defined() || t.scalar_type() == torch::kFloat;
  };
  const bool fused = fused_kernels_enabled() && x.device().is_cpu() &&
                     layout_of(x) != Layout::Other &&
                     (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kBFloat16) &&
                     is_f32(weight) && is_f32(bias);
  if (!fused) return group_norm_act_reference(x, groups, weight, bias, eps, act, scale, shift);
  const auto fopts = x.options().dtype(torch::kFloat);
  auto as_nc = [&](const torch::Tensor& t) {
    return t.defined() ? t.to(torch::kFloat).reshape({d.n, d.c}).contiguous()
                       : torch::empty({0}, fopts);
  };
  // No affine parameters: gain 1, bias 0 (their gradients are computed and dropped).
  const torch::Tensor w = weight.defined() ? weight.contiguous() : torch::ones({d.c}, fopts);
  const torch::Tensor b = bias.defined() ? bias.contiguous() : torch::zeros({d.c}, fopts);
  return GroupNormSiluFn::apply(x, w, b, as_nc(scale), as_nc(shift), groups, eps,
                                static_cast<int64_t>(act));
}

torch::Tensor group_norm_silu_reference(const torch::Tensor& x, int64_t groups,
                                        const torch::Tensor& weight, const torch::Tensor& bias,
                                        double eps, const torch::Tensor& scale,
                                        const torch::Tensor& shift) {
  return group_norm_act_reference(x, groups, weight, bias, eps, NormActivation::SiLU, scale, shift);
}

torch::Tensor group_norm_silu(const torch::Tensor& x, int64_t groups, const torch::Tensor& weight,
                              const torch::Tensor& bias, double eps, const torch::Tensor& scale,
                              const torch::Tensor& shift) {
  return group_norm_act(x, groups, weight, bias, eps, NormActivation::SiLU, scale, shift);
}

torch::Tensor group_norm_silu(torch::nn::GroupNorm& norm, const torch::Tensor& x,
                              const torch::Tensor& scale, const torch::Tensor& shift) {
  const auto& o = norm->options;
  return group_norm_silu(x, o.num_groups(), norm->weight, norm->bias, o.eps(), scale, shift);
}

bool fused_kernels_enabled() { return fused_flag().load(); }
void set_fused_kernels_enabled(bool on) { fused_flag().store(on); }
const char* fused_kernels_isa() { return cpu_kernels().isa; }

}  // namespace gm::nn
