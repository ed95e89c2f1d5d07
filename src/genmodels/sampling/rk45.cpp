#include "genmodels/sampling/rk45.h"

#include <cmath>

#include "genmodels/core/error.h"

namespace gm::sampling {

namespace {

// Dormand-Prince 5(4) tableau (Hairer et al., Table II.5.2); b5 = the 7th row of a (FSAL).
constexpr double kC[7] = {0.0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1.0, 1.0};
constexpr double kA[7][6] = {
    {},
    {1.0 / 5},
    {3.0 / 40, 9.0 / 40},
    {44.0 / 45, -56.0 / 15, 32.0 / 9},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
    {35.0 / 384, 0.0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}};
// b5 - b4: the embedded error weights.
constexpr double kE[7] = {71.0 / 57600,      0.0,        -71.0 / 16695, 71.0 / 1920,
                          -17253.0 / 339200, 22.0 / 525, -1.0 / 40};

// x (R x ...) times per-row scalars (R, float64) -> broadcast over x.
torch::Tensor rowmul(const torch::Tensor& x, const torch::Tensor& v) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  return x * v.to(x.device(), x.scalar_type()).view(shape);
}

}  // namespace

Rk45Result solve_rk45(const Rk45Fn& f, torch::Tensor y0, double t0, double t1, const Rk45Options& o,
                      const std::function<void(double)>& progress) {
  if (!(o.rtol > 0.0)) throw Error("sample.rtol must be > 0, got " + num(o.rtol));
  if (!(o.atol > 0.0)) throw Error("sample.atol must be > 0, got " + num(o.atol));
  if (!y0.defined() || y0.dim() < 1) throw Error("solve_rk45: y0 must be an N x ... tensor");
  Rk45Result res;
  const int64_t n = y0.size(0);
  const double span = t1 - t0, dir = span >= 0 ? 1.0 : -1.0;
  res.y = y0.clone();
  if (n == 0 || span == 0.0) return res;
  auto f64 = torch::dtype(torch::kDouble);
  torch::Tensor t = torch::full({n}, t0, f64);
  torch::Tensor h =
      torch::full({n}, dir * (o.first_step > 0 ? o.first_step : 0.02 * std::fabs(span)), f64);
  torch::Tensor active = torch::arange(n, torch::kLong);
  torch::Tensor k1 = f(res.y, t, active);  // FSAL: each row's derivative at its current point
  ++res.calls;
  const int64_t elems = y0.numel() / n;
  while (active.numel() > 0) {
    if (res.calls >= o.max_calls)
      throw Error("solve_rk45: no convergence after " + std::to_string(res.calls) +
                  " evaluations; raise sample.rtol / sample.atol");
    const torch::Tensor y_old = res.y.index_select(0, active);
    torch::Tensor y;  // the 5th-order solution (the FSAL stage's point)
    torch::Tensor ta = t.index_select(0, active);
    // Do not step past t1.
    torch::Tensor ha = h.index_select(0, active);
    ha = dir > 0 ? torch::minimum(ha, t1 - ta) : torch::maximum(ha, t1 - ta);
    std::vector<torch::Tensor> k(7);
    k[0] = k1.index_select(0, active);
    for (int s = 1; s < 7; ++s) {
      torch::Tensor ys = y_old;
      for (int j = 0; j < s; ++j)
        if (kA[s][j] != 0.0) ys = ys + rowmul(k[j], ha * kA[s][j]);
      k[s] = f(ys, ta + ha * kC[s], active);
      ++res.calls;
      if (s == 6) y = ys;
    }
    torch::Tensor err = torch::zeros_like(k[0]);
    for (int s = 0; s < 7; ++s)
      if (kE[s] != 0.0) err = err + k[s] * kE[s];
    err = rowmul(err, ha);
    const torch::Tensor scale = o.atol + o.rtol * torch::maximum(y_old.abs(), y.abs());
    const torch::Tensor e =
        (err / scale).square().reshape({y.size(0), elems}).mean(1).sqrt().to(torch::kDouble).cpu();
    const torch::Tensor ok = e <= 1.0;
    // Step-size control: 0.9 err^(-1/5), in [0.2, 10] (<= 1 after a rejection).
    torch::Tensor factor = (0.9 * e.clamp_min(1e-10).pow(-0.2)).clamp(0.2, 10.0);
    factor = torch::where(ok, factor, factor.clamp_max(1.0));
    const torch::Tensor acc = active.masked_select(ok);
    if (acc.numel() > 0) {
      const torch::Tensor rows = ok.nonzero().squeeze(1);
      res.y.index_copy_(0, acc, y.index_select(0, rows.to(y.device())));
      k1.index_copy_(0, acc, k[6].index_select(0, rows.to(y.device())));
      t.index_copy_(0, acc, (ta + ha).index_select(0, rows));
    }
    res.accepted += acc.numel();
    res.rejected += active.numel() - acc.numel();
    h.index_copy_(0, active, ha * factor);
    // Rows that reached t1 are done.
    const torch::Tensor remaining = dir > 0
                                        ? t.index_select(0, active) < t1 - 1e-12 * std::fabs(span)
                                        : t.index_select(0, active) > t1 + 1e-12 * std::fabs(span);
    active = active.masked_select(remaining);
    if (progress) {
      const double slowest = active.numel() > 0 ? (dir > 0 ? t.index_select(0, active).min()
                                                           : t.index_select(0, active).max())
                                                      .item<double>()
                                                : t1;
      progress((slowest - t0) / span);
    }
  }
  return res;
}

}  // namespace gm::sampling
