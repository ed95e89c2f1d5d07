#include "genmodels/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace gm::train {

double LrSchedule::at(int64_t step, double fraction) const {
  double scale = 1.0;
  if (kind == "cosine") {
    const double f = std::clamp(fraction, 0.0, 1.0);
    scale = min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + std::cos(M_PI * f));
  }
  if (warmup_steps > 0 && step < warmup_steps)
    scale *= static_cast<double>(step + 1) / warmup_steps;
  return lr * scale;
}

}  // namespace gm::train
