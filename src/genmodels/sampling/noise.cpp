#include "genmodels/sampling/noise.h"

#include "genmodels/core/error.h"

namespace gm::sampling {

uint64_t mix_seed(uint64_t seed, uint64_t index) {
  // splitmix64's finaliser applied to the seed, then to seed' + index (Steele et al. 2014).
  auto step = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  return step(step(seed) + index);
}

Noise::Noise(torch::Generator gen) : gen_(std::make_shared<torch::Generator>(std::move(gen))) {}

Noise Noise::per_row(uint64_t seed, int64_t first_row, int64_t rows) {
  if (first_row < 0 || rows < 0) throw Error("Noise::per_row: rows must be >= 0");
  Noise n;
  n.rows_ = std::make_shared<std::vector<torch::Generator>>();
  n.rows_->reserve(rows);
  for (int64_t r = 0; r < rows; ++r)
    n.rows_->push_back(
        at::detail::createCPUGenerator(mix_seed(seed, static_cast<uint64_t>(first_row + r))));
  return n;
}

torch::Tensor Noise::like(const torch::Tensor& x) const {
  if (rows_) {
    if (x.dim() < 1 || x.size(0) != static_cast<int64_t>(rows_->size()))
      throw Error("Noise::like: the state has " + std::to_string(x.dim() ? x.size(0) : 0) +
                  " rows, the noise streams " + std::to_string(rows_->size()));
    // Each row from its own stream, drawn on the CPU in float32 so that the values do not depend
    // on the device or dtype the sampler runs in.
    const auto row_shape = x.sizes().slice(1);
    std::vector<torch::Tensor> parts;
    parts.reserve(rows_->size());
    for (auto& g : *rows_) parts.push_back(torch::randn(row_shape, g, torch::kFloat32));
    return torch::stack(parts).to(x.device(), x.scalar_type());
  }
  if (gen_) return torch::randn(x.sizes(), *gen_, torch::kFloat32).to(x.device(), x.scalar_type());
  return torch::randn_like(x);
}

}  // namespace gm::sampling
