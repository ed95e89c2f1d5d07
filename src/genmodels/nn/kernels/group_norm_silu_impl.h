// Body of the GroupNorm + scale/shift + activation (SiLU, ReLU or none) kernels
// (group_norm_silu.h), included once by each instruction-set file, which defines GM_KERNEL_TABLE
// (the table function's name) and GM_KERNEL_ISA and is compiled with its CPU_CAPABILITY, so
// at::vec::Vectorized<float> is that ISA's vector.
//
// Work split, NCHW: one task per (sample, group), a contiguous block of c / groups channels x hw.
// Forward reads the block twice (moments, then the activation); backward reads x and dy once to
// form dz and its sums, then rewrites dz in place into dx (GroupNorm's backward, with the group
// means of dxhat and dxhat * xhat expressed through the per-channel sums).
// Channels-last (NHWC): one task per sample, whose hw x c values are contiguous; vectors run
// across channels, so each lane accumulates one channel's sums over the positions, and the group
// sums are formed from the channel sums afterwards. Same passes as NCHW.
#pragma once
#ifndef GM_KERNEL_TABLE
#error "define GM_KERNEL_TABLE and GM_KERNEL_ISA before including group_norm_silu_impl.h"
#endif
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "genmodels/nn/kernels/group_norm_silu.h"

namespace gm::nn::kernels {
namespace {

using Vec = at::vec::Vectorized<float>;
constexpr int64_t kW = Vec::size();

// A block of n values as floats: the pointer itself for fp32, a converted per-thread copy for bf16.
const float* load_block(const float* p, int64_t, std::vector<float>&) { return p; }
const float* load_block(const c10::BFloat16* p, int64_t n, std::vector<float>& buf) {
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
  for (int64_t i = 0; i < n; ++i) buf[i] = static_cast<float>(p[i]);
  return buf.data();
}
// Where to write a block of n results: the destination for fp32, a per-thread buffer for bf16
// (copied to the destination by store_block).
float* out_block(float* p, int64_t, std::vector<float>&) { return p; }
float* out_block(c10::BFloat16*, int64_t n, std::vector<float>& buf) {
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
  return buf.data();
}
void store_block(const float*, float*, int64_t) {}
void store_block(const float* src, c10::BFloat16* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = c10::BFloat16(src[i]);
}

double hsum(const Vec& v) {
  __at_align__ float b[kW];
  v.store(b);
  double t = 0.0;
  for (int64_t j = 0; j < kW; ++j) t += b[j];
  return t;
}

// sum(p - k) and sum((p - k)^2) over n values; shifting by a sample k keeps the one-pass variance
// accurate when the mean is large against the spread.
void shifted_moments(const float* p, int64_t n, float k, double& s1, double& s2) {
  const Vec vk(k);
  Vec a1(0.f), a2(0.f);
  int64_t i = 0;
  for (; i + kW <= n; i += kW) {
    const Vec d = Vec::loadu(p + i) - vk;
    a1 = a1 + d;
    a2 = at::vec::fmadd(d, d, a2);
  }
  s1 = hsum(a1);
  s2 = hsum(a2);
  for (; i < n; ++i) {
    const double d = double(p[i]) - k;
    s1 += d;
    s2 += d * d;
  }
}

Vec sigmoid(const Vec& z) { return Vec(1.f) / (Vec(1.f) + z.neg().exp()); }

// The activations and their derivatives given the pre-activation z.
struct SiLU {
  static Vec f(const Vec& z) { return z * sigmoid(z); }
  // silu'(z) = sig(z) (1 + z (1 - sig(z)))
  static Vec grad(const Vec& z, const Vec& dy) {
    const Vec sg = sigmoid(z), one(1.f);
    return dy * sg * (one + z * (one - sg));
  }
};
struct ReLU {
  static Vec f(const Vec& z) { return z & (z > Vec(0.f)); }
  static Vec grad(const Vec& z, const Vec& dy) { return dy & (z > Vec(0.f)); }
};
struct Identity {
  static Vec f(const Vec& z) { return z; }
  static Vec grad(const Vec&, const Vec& dy) { return dy; }
};

// y = act(a x + b) over n values.
template <typename Act>
void act_affine(const float* x, float* y, int64_t n, float a, float b) {
  const Vec va(a), vb(b);
  int64_t i = 0;
  for (; i + kW <= n; i += kW) Act::f(at::vec::fmadd(Vec::loadu(x + i), va, vb)).store(y + i);
  if (i < n) Act::f(at::vec::fmadd(Vec::loadu(x + i, n - i), va, vb)).store(y + i, n - i);
}

// dz = dy * act'(a x + b); returns sum(dz) and sum(dz (x - mu)). Tail lanes load dy = 0, so they
// add nothing to the sums.
template <typename Act>
void act_affine_grad(const float* x, const float* dy, float* dz, int64_t n, float a, float b,
                     float mu, double& sum_dz, double& sum_dzx) {
  const Vec va(a), vb(b), vmu(mu);
  Vec a1(0.f), a2(0.f);
  auto step = [&](const Vec& xv, const Vec& dyv) {
    const Vec g = Act::grad(at::vec::fmadd(xv, va, vb), dyv);
    a1 = a1 + g;
    a2 = at::vec::fmadd(g, xv - vmu, a2);
    return g;
  };
  int64_t i = 0;
  for (; i + kW <= n; i += kW) step(Vec::loadu(x + i), Vec::loadu(dy + i)).store(dz + i);
  if (i < n) step(Vec::loadu(x + i, n - i), Vec::loadu(dy + i, n - i)).store(dz + i, n - i);
  sum_dz = hsum(a1);
  sum_dzx = hsum(a2);
}

void act_affine(GnActivation act, const float* x, float* y, int64_t n, float a, float b) {
  switch (act) {
    case GnActivation::SiLU:
      return act_affine<SiLU>(x, y, n, a, b);
    case GnActivation::ReLU:
      return act_affine<ReLU>(x, y, n, a, b);
    case GnActivation::None:
      return act_affine<Identity>(x, y, n, a, b);
  }
}

void act_affine_grad(GnActivation act, const float* x, const float* dy, float* dz, int64_t n,
                     float a, float b, float mu, double& sum_dz, double& sum_dzx) {
  switch (act) {
    case GnActivation::SiLU:
      return act_affine_grad<SiLU>(x, dy, dz, n, a, b, mu, sum_dz, sum_dzx);
    case GnActivation::ReLU:
      return act_affine_grad<ReLU>(x, dy, dz, n, a, b, mu, sum_dz, sum_dzx);
    case GnActivation::None:
      return act_affine_grad<Identity>(x, dy, dz, n, a, b, mu, sum_dz, sum_dzx);
  }
}

// Per-(sample, channel) affine of the fused op: z = a x + b.
struct ChannelAffine {
  float f, a, b;  // f = 1 + scale
};
ChannelAffine channel_affine(const float* gamma, const float* beta, const float* scale,
                             const float* shift, int64_t nc, int64_t c, float mu, float rs) {
  ChannelAffine r;
  r.f = scale ? 1.f + scale[nc] : 1.f;
  r.a = gamma[c] * rs * r.f;
  r.b = (beta[c] - gamma[c] * mu * rs) * r.f + (shift ? shift[nc] : 0.f);
  return r;
}

template <typename T>
void forward_nhwc(const T* x, const float* gamma, const float* beta, const float* scale,
                  const float* shift, T* y, float* mean, float* rstd, const GnSiluShape& s);
template <typename T>
void backward_nhwc(const T* dy, const T* x, const float* gamma, const float* beta,
                   const float* scale, const float* shift, const float* mean, const float* rstd,
                   T* dx, float* dsum, float* dxhat, const GnSiluShape& s);

template <typename T>
void forward_impl(const T* x, const float* gamma, const float* beta, const float* scale,
                  const float* shift, T* y, float* mean, float* rstd, const GnSiluShape& s) {
  if (s.channels_last) return forward_nhwc(x, gamma, beta, scale, shift, y, mean, rstd, s);
  const int64_t cg = s.c / s.groups, m = cg * s.hw;
  at::parallel_for(0, s.n * s.groups, 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> xbuf, ybuf;
    for (int64_t ng = begin; ng < end; ++ng) {
      const int64_t n = ng / s.groups, g = ng % s.groups;
      const int64_t off = (n * s.c + g * cg) * s.hw;
      const float* xf = load_block(x + off, m, xbuf);
      double s1 = 0.0, s2 = 0.0;
      shifted_moments(xf, m, xf[0], s1, s2);
      const double d = s1 / double(m);
      const double var = std::max(s2 / double(m) - d * d, 0.0);
      const float mu = static_cast<float>(xf[0] + d);
      const float rs = static_cast<float>(1.0 / std::sqrt(var + double(s.eps)));
      mean[ng] = mu;
      rstd[ng] = rs;
      float* yf = out_block(y + off, m, ybuf);
      for (int64_t cc = 0; cc < cg; ++cc) {
        const int64_t c = g * cg + cc;
        const ChannelAffine ca = channel_affine(gamma, beta, scale, shift, n * s.c + c, c, mu, rs);
        act_affine(s.act, xf + cc * s.hw, yf + cc * s.hw, s.hw, ca.a, ca.b);
      }
      store_block(yf, y + off, m);
    }
  });
}

// GroupNorm backward (Wu & He 2018 via the standard normalisation gradient): with
// u = dz (1 + scale) gamma = dL/dxhat and M = (c / groups) hw elements per group,
//   dx = rstd (u - mean_g(u) - xhat mean_g(u xhat)),
// and mean_g(u) = sum_c gamma_c f_c dsum_c / M, mean_g(u xhat) = sum_c gamma_c f_c dxhat_c / M.
template <typename T>
void backward_impl(const T* dy, const T* x, const float* gamma, const float* beta,
                   const float* scale, const float* shift, const float* mean, const float* rstd,
                   T* dx, float* dsum, float* dxhat, const GnSiluShape& s) {
  if (s.channels_last)
    return backward_nhwc(dy, x, gamma, beta, scale, shift, mean, rstd, dx, dsum, dxhat, s);
  const int64_t cg = s.c / s.groups, m = cg * s.hw;
  at::parallel_for(0, s.n * s.groups, 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> xbuf, dybuf, dzbuf;
    for (int64_t ng = begin; ng < end; ++ng) {
      const int64_t n = ng / s.groups, g = ng % s.groups;
      const int64_t off = (n * s.c + g * cg) * s.hw;
      const float* xf = load_block(x + off, m, xbuf);
      const float* dyf = load_block(dy + off, m, dybuf);
      float* dz = out_block(dx + off, m, dzbuf);
      const float mu = mean[ng], rs = rstd[ng];
      double mean_u = 0.0, mean_uxhat = 0.0;
      for (int64_t cc = 0; cc < cg; ++cc) {
        const int64_t c = g * cg + cc, nc = n * s.c + c;
        const ChannelAffine ca = channel_affine(gamma, beta, scale, shift, nc, c, mu, rs);
        double d1 = 0.0, dxm = 0.0;
        act_affine_grad(s.act, xf + cc * s.hw, dyf + cc * s.hw, dz + cc * s.hw, s.hw, ca.a, ca.b,
                        mu, d1, dxm);
        const double d2 = rs * dxm;
        dsum[nc] = static_cast<float>(d1);
        dxhat[nc] = static_cast<float>(d2);
        mean_u += double(gamma[c]) * ca.f * d1;
        mean_uxhat += double(gamma[c]) * ca.f * d2;
      }
      mean_u /= double(m);
      mean_uxhat /= double(m);
      const float c2 = static_cast<float>(-double(rs) * rs * mean_uxhat);
      const float c3 = static_cast<float>(double(rs) * rs * mean_uxhat * mu - rs * mean_u);
      for (int64_t cc = 0; cc < cg; ++cc) {
        const int64_t c = g * cg + cc;
        // rstd gamma f is the channel's slope a (channel_affine)
        const float a = channel_affine(gamma, beta, scale, shift, n * s.c + c, c, mu, rs).a;
        const Vec vg(a), v2(c2), v3(c3);
        float* d = dz + cc * s.hw;
        const float* xc = xf + cc * s.hw;
        int64_t i = 0;
        for (; i + kW <= s.hw; i += kW)
          at::vec::fmadd(Vec::loadu(d + i), vg, at::vec::fmadd(Vec::loadu(xc + i), v2, v3))
              .store(d + i);
        for (; i < s.hw; ++i) d[i] = d[i] * a + (xc[i] * c2 + c3);
      }
      store_block(dz, dx + off, m);
    }
  });
}

// ---------------------------------------------------------------------------- channels-last
// Channel vectors [c0, c0 + w) of a row of c values: full vectors, then one partial one.
Vec load_ch(const float* p, int64_t w) { return w == kW ? Vec::loadu(p) : Vec::loadu(p, w); }
void store_ch(const Vec& v, float* p, int64_t w) {
  if (w == kW)
    v.store(p);
  else
    v.store(p, w);
}

// An activation over one sample's hw x c values: y = act(a_c x + b_c), a and b per channel.
template <typename Act>
void act_affine_nhwc(const float* x, float* y, int64_t hw, int64_t c, const float* a,
                     const float* b) {
  for (int64_t c0 = 0; c0 < c; c0 += kW) {
    const int64_t w = std::min(kW, c - c0);
    const Vec va = load_ch(a + c0, w), vb = load_ch(b + c0, w);
    for (int64_t p = 0; p < hw; ++p) {
      const int64_t o = p * c + c0;
      store_ch(Act::f(at::vec::fmadd(load_ch(x + o, w), va, vb)), y + o, w);
    }
  }
}

// dz = dy act'(a_c x + b_c) over one sample; per channel sum(dz) and sum(dz (x - mu_c)).
template <typename Act>
void act_affine_grad_nhwc(const float* x, const float* dy, float* dz, int64_t hw, int64_t c,
                          const float* a, const float* b, const float* mu, float* sum_dz,
                          float* sum_dzx) {
  for (int64_t c0 = 0; c0 < c; c0 += kW) {
    const int64_t w = std::min(kW, c - c0);
    const Vec va = load_ch(a + c0, w), vb = load_ch(b + c0, w), vmu = load_ch(mu + c0, w);
    Vec a1(0.f), a2(0.f);
    for (int64_t p = 0; p < hw; ++p) {
      const int64_t o = p * c + c0;
      const Vec xv = load_ch(x + o, w);
      const Vec g = Act::grad(at::vec::fmadd(xv, va, vb), load_ch(dy + o, w));
      a1 = a1 + g;
      a2 = at::vec::fmadd(g, xv - vmu, a2);
      store_ch(g, dz + o, w);
    }
    store_ch(a1, sum_dz + c0, w);
    store_ch(a2, sum_dzx + c0, w);
  }
}

void act_affine_nhwc(GnActivation act, const float* x, float* y, int64_t hw, int64_t c,
                     const float* a, const float* b) {
  switch (act) {
    case GnActivation::SiLU:
      return act_affine_nhwc<SiLU>(x, y, hw, c, a, b);
    case GnActivation::ReLU:
      return act_affine_nhwc<ReLU>(x, y, hw, c, a, b);
    case GnActivation::None:
      return act_affine_nhwc<Identity>(x, y, hw, c, a, b);
  }
}

void act_affine_grad_nhwc(GnActivation act, const float* x, const float* dy, float* dz, int64_t hw,
                          int64_t c, const float* a, const float* b, const float* mu, float* sum_dz,
                          float* sum_dzx) {
  switch (act) {
    case GnActivation::SiLU:
      return act_affine_grad_nhwc<SiLU>(x, dy, dz, hw, c, a, b, mu, sum_dz, sum_dzx);
    case GnActivation::ReLU:
      return act_affine_grad_nhwc<ReLU>(x, dy, dz, hw, c, a, b, mu, sum_dz, sum_dzx);
    case GnActivation::None:
      return act_affine_grad_nhwc<Identity>(x, dy, dz, hw, c, a, b, mu, sum_dz, sum_dzx);
  }
}

template <typename T>
void forward_nhwc(const T* x, const float* gamma, const float* beta, const float* scale,
                  const float* shift, T* y, float* mean, float* rstd, const GnSiluShape& s) {
  const int64_t c = s.c, hw = s.hw, cg = c / s.groups, m = hw * c;
  at::parallel_for(0, s.n, 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> xbuf, ybuf, k, s1, s2, a, b;
    for (auto* v : {&k, &s1, &s2, &a, &b}) v->resize(c);
    for (int64_t n = begin; n < end; ++n) {
      const float* xf = load_block(x + n * m, m, xbuf);
      // Shifted moments (see shifted_moments): each channel is shifted by its group's first value.
      for (int64_t ch = 0; ch < c; ++ch) k[ch] = xf[(ch / cg) * cg];
      for (int64_t c0 = 0; c0 < c; c0 += kW) {
        const int64_t w = std::min(kW, c - c0);
        const Vec vk = load_ch(k.data() + c0, w);
        Vec a1(0.f), a2(0.f);
        for (int64_t p = 0; p < hw; ++p) {
          const Vec d = load_ch(xf + p * c + c0, w) - vk;
          a1 = a1 + d;
          a2 = at::vec::fmadd(d, d, a2);
        }
        store_ch(a1, s1.data() + c0, w);
        store_ch(a2, s2.data() + c0, w);
      }
      for (int64_t g = 0; g < s.groups; ++g) {
        double t1 = 0.0, t2 = 0.0;
        for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) t1 += s1[ch], t2 += s2[ch];
        const double cnt = double(cg * hw), d = t1 / cnt;
        const double var = std::max(t2 / cnt - d * d, 0.0);
        const float mu = static_cast<float>(k[g * cg] + d);
        const float rs = static_cast<float>(1.0 / std::sqrt(var + double(s.eps)));
        mean[n * s.groups + g] = mu;
        rstd[n * s.groups + g] = rs;
        for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) {
          const ChannelAffine ca =
              channel_affine(gamma, beta, scale, shift, n * c + ch, ch, mu, rs);
          a[ch] = ca.a;
          b[ch] = ca.b;
        }
      }
      float* yf = out_block(y + n * m, m, ybuf);
      act_affine_nhwc(s.act, xf, yf, hw, c, a.data(), b.data());
      store_block(yf, y + n * m, m);
    }
  });
}

// The NCHW backward's formulas (backward_impl) with per-channel vectors of a, b and the group
// terms.
template <typename T>
void backward_nhwc(const T* dy, const T* x, const float* gamma, const float* beta,
                   const float* scale, const float* shift, const float* mean, const float* rstd,
                   T* dx, float* dsum, float* dxhat, const GnSiluShape& s) {
  const int64_t c = s.c, hw = s.hw, cg = c / s.groups, m = hw * c;
  at::parallel_for(0, s.n, 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> xbuf, dybuf, dzbuf, a, b, mu, d1, dxm, c2, c3;
    for (auto* v : {&a, &b, &mu, &d1, &dxm, &c2, &c3}) v->resize(c);
    for (int64_t n = begin; n < end; ++n) {
      const float* xf = load_block(x + n * m, m, xbuf);
      const float* dyf = load_block(dy + n * m, m, dybuf);
      float* dz = out_block(dx + n * m, m, dzbuf);
      for (int64_t ch = 0; ch < c; ++ch) {
        const int64_t ng = n * s.groups + ch / cg;
        const ChannelAffine ca =
            channel_affine(gamma, beta, scale, shift, n * c + ch, ch, mean[ng], rstd[ng]);
        a[ch] = ca.a;
        b[ch] = ca.b;
        mu[ch] = mean[ng];
      }
      act_affine_grad_nhwc(s.act, xf, dyf, dz, hw, c, a.data(), b.data(), mu.data(), d1.data(),
                           dxm.data());
      for (int64_t g = 0; g < s.groups; ++g) {
        const int64_t ng = n * s.groups + g;
        const float rs = rstd[ng];
        double mean_u = 0.0, mean_uxhat = 0.0;
        for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) {
          const int64_t nc = n * c + ch;
          const double f = scale ? 1.0 + double(scale[nc]) : 1.0;
          const double d2 = double(rs) * dxm[ch];
          dsum[nc] = d1[ch];
          dxhat[nc] = static_cast<float>(d2);
          mean_u += double(gamma[ch]) * f * d1[ch];
          mean_uxhat += double(gamma[ch]) * f * d2;
        }
        mean_u /= double(cg * hw);
        mean_uxhat /= double(cg * hw);
        const float g2 = static_cast<float>(-double(rs) * rs * mean_uxhat);
        const float g3 = static_cast<float>(double(rs) * rs * mean_uxhat * mean[ng] - rs * mean_u);
        for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) c2[ch] = g2, c3[ch] = g3;
      }
      for (int64_t c0 = 0; c0 < c; c0 += kW) {
        const int64_t w = std::min(kW, c - c0);
        const Vec va = load_ch(a.data() + c0, w), v2 = load_ch(c2.data() + c0, w),
                  v3 = load_ch(c3.data() + c0, w);
        for (int64_t p = 0; p < hw; ++p) {
          const int64_t o = p * c + c0;
          store_ch(
              at::vec::fmadd(load_ch(dz + o, w), va, at::vec::fmadd(load_ch(xf + o, w), v2, v3)),
              dz + o, w);
        }
      }
      store_block(dz, dx + n * m, m);
    }
  });
}

}  // namespace

GnSiluKernels GM_KERNEL_TABLE() {
  GnSiluKernels k;
  k.isa = GM_KERNEL_ISA;
  k.forward_f32 = &forward_impl<float>;
  k.forward_bf16 = &forward_impl<c10::BFloat16>;
  k.backward_f32 = &backward_impl<float>;
  k.backward_bf16 = &backward_impl<c10::BFloat16>;
  return k;
}

}  // namespace gm::nn::kernels
