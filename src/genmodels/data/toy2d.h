// 2-D toy distributions for flows and diffusion demos (the FFJORD shapes, rescaled to unit scale).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gm::data {

/// Draws `n` points of a 2-D toy distribution ("moons", "8gaussians", "swissroll",
/// "checkerboard", "circles") as float32 n x 2, centred with roughly unit std, deterministic
/// from `seed` (a private generator; the global one is untouched). Unknown names throw gm::Error
/// listing the valid ones.
torch::Tensor sample_toy2d(const std::string& name, int64_t n, uint64_t seed);

/// The valid toy names, in a fixed order.
std::vector<std::string> toy2d_names();

}  // namespace gm::data
