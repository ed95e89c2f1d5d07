// Learning-rate schedules: linear warm-up, then constant, cosine decay (Loshchilov & Hutter 2017,
// SGDR, without restarts) or constant-then-linear decay over the second half (CycleGAN's).
#pragma once
#include <string>

namespace gm::train {

struct LrSchedule {
  double lr = 2e-4;               ///< peak learning rate
  int64_t warmup_steps = 0;       ///< linear warm-up from 0 over this many steps
  std::string kind = "constant";  ///< "constant" | "cosine" | "linear"
  double min_ratio = 0.0;         ///< decay floor as a fraction of lr

  /// Learning rate for optimizer step `step` (0-based) when `fraction` of the budget is done.
  double at(int64_t step, double fraction) const;
};

}  // namespace gm::train
