#include "genmodels/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace gm::train {

double LrSchedule::at(int64_t step, double fraction) const {
  double scale = 1.0;
  if (kind == "cosine") {
    const double f = std::clamp(fraction, 0.0, 1.0);
    scale = min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + std::cos(M_PI * f));
  } else if (kind == "linear") {
    // Zhu et al. 2017, Sec. 4 / App. 7.1: constant for the first half, then linear to the floor.
    const double f = std::clamp(fraction, 0.0, 1.0);
    scale = f <= 0.5 ? 1.0 : 1.0 - (1.0 - min_ratio) * (f - 0.5) / 0.5;
  }
  if (warmup_steps > 0 && step < warmup_steps)
    scale *= static_cast<double>(step + 1) / warmup_steps;
  return lr * scale;
}

}  // namespace gm::train
