// Adaptive Dormand-Prince RK5(4) (Dormand & Prince 1980, "A family of embedded Runge-Kutta
// formulae"; the FSAL tableau of Hairer, Norsett & Wanner, Solving ODEs I, Table II.5.2) with
// the standard step-size control (ibid., Sec. II.4: error in the RMS norm of
// (y5 - y4) / (atol + rtol max(|y|, |y_new|)), factor 0.9 err^(-1/5) clamped to [0.2, 10]).
//
// Every row of the state is integrated independently, with its own step size, accepted or
// rejected on its own error: a row's result does not depend on the other rows (so samples do not
// depend on the batch they are drawn in). All active rows are evaluated in one call of f per
// stage; rows that reach t1 drop out of later calls.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>

namespace gm::sampling {

struct Rk45Options {
  double rtol = 1e-4, atol = 1e-4;
  double first_step = 0.0;    ///< initial |h| (0 = 2% of |t1 - t0|)
  int64_t max_calls = 20000;  ///< calls of f before giving up (error)
};

struct Rk45Result {
  torch::Tensor y;                     ///< rows at t1
  int64_t calls = 0;                   ///< calls of f (each evaluates all rows still active)
  int64_t accepted = 0, rejected = 0;  ///< steps summed over rows
};

/// dy/dt = f(y, t, rows): f gets the active rows (R x ...), their times (float64 R) and their
/// indices in y0 (int64 R, for per-row data such as class labels) and returns dy/dt shaped like
/// y. progress(fraction of [t0, t1] covered by the slowest row).
using Rk45Fn =
    std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>;
Rk45Result solve_rk45(const Rk45Fn& f, torch::Tensor y0, double t0, double t1, const Rk45Options& o,
                      const std::function<void(double)>& progress = {});

}  // namespace gm::sampling
