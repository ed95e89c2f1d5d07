// Timestep respacing (Nichol & Dhariwal 2021 Sec. 4; spacings of Lin et al. 2023 Table 2).
#include "genmodels/sampling/timesteps.h"

#include <algorithm>
#include <cmath>

#include "genmodels/core/error.h"

namespace gm::sampling {

Spacing parse_spacing(const std::string& name) {
  if (name == "linspace") return Spacing::Linspace;
  if (name == "leading") return Spacing::Leading;
  if (name == "trailing") return Spacing::Trailing;
  throw Error("unknown timestep spacing '" + name + "'; valid: linspace, leading, trailing");
}

std::string to_string(Spacing s) {
  switch (s) {
    case Spacing::Linspace:
      return "linspace";
    case Spacing::Leading:
      return "leading";
    case Spacing::Trailing:
      return "trailing";
  }
  return "?";
}

// Lin et al. 2023, Table 2 (rounding half away from zero).
std::vector<int64_t> respace_timesteps(int64_t T, int64_t steps, Spacing spacing) {
  if (T < 1) throw Error("respace_timesteps: T = " + std::to_string(T) + " must be >= 1");
  if (steps < 1 || steps > T) {
    throw Error("respace_timesteps: steps = " + std::to_string(steps) + " must be in [1, " +
                std::to_string(T) + "] (the schedule's T)");
  }
  std::vector<int64_t> ts(steps);
  const double Td = static_cast<double>(T), S = static_cast<double>(steps);
  for (int64_t i = 0; i < steps; ++i) {
    switch (spacing) {
      case Spacing::Linspace:
        ts[i] = steps == 1 ? 0 : static_cast<int64_t>(std::round(i * (Td - 1.0) / (S - 1.0)));
        break;
      case Spacing::Leading:
        ts[i] = i * (T / steps);
        break;
      case Spacing::Trailing:
        ts[i] = static_cast<int64_t>(std::round(Td - i * Td / S)) - 1;
        break;
    }
  }
  std::sort(ts.begin(), ts.end(), std::greater<int64_t>());
  return ts;
}

void check_timesteps(const std::vector<int64_t>& timesteps, int64_t T, const char* who) {
  if (timesteps.empty()) {
    throw Error(std::string(who) + ": no timesteps; build them with respace_timesteps");
  }
  for (size_t i = 0; i < timesteps.size(); ++i) {
    const int64_t t = timesteps[i];
    if (t < 0 || t >= T) {
      throw Error(std::string(who) + ": timestep " + std::to_string(t) + " outside [0, " +
                  std::to_string(T - 1) + "] of the schedule");
    }
    if (i > 0 && t >= timesteps[i - 1]) {
      throw Error(std::string(who) + ": timesteps must be strictly descending (" +
                  std::to_string(timesteps[i - 1]) + " then " + std::to_string(t) + ")");
    }
  }
}

}  // namespace gm::sampling
