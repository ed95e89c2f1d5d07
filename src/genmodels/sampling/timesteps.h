// Timestep subsequences for sampling with fewer steps than training (Nichol & Dhariwal 2021,
// Sec. 4 "respacing"), with the three spacings of Lin et al. 2023, "Common Diffusion Noise
// Schedules and Sample Steps are Flawed", Table 2.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gm::sampling {

/// Lin et al. 2023 Table 2, 0-indexed over [0, T), S = steps:
/// Linspace: round(linspace(0, T-1, S)); Leading: arange(0, T, T div S)[:S];
/// Trailing: round(arange(T, 0, -T/S)) - 1.
enum class Spacing { Linspace, Leading, Trailing };
Spacing parse_spacing(const std::string& name);  // "linspace" | "leading" | "trailing"
std::string to_string(Spacing s);

/// `steps` timesteps out of [0, T), DESCENDING (first = noisiest), per spacing. steps == T gives
/// T-1..0. Errors if steps < 1 or > T.
std::vector<int64_t> respace_timesteps(int64_t T, int64_t steps, Spacing spacing);

/// Throws gm::Error unless `timesteps` is non-empty, strictly descending and inside [0, T).
void check_timesteps(const std::vector<int64_t>& timesteps, int64_t T, const char* who);

}  // namespace gm::sampling
