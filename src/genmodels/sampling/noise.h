// The Gaussian noise that stochastic samplers add at each step. A sampler asks for noise shaped
// like its state; where it comes from is the caller's choice:
//  - the default generator (tests, quick use);
//  - one torch::Generator for the whole tensor;
//  - one stream per sample (Noise::per_row), seeded from (seed, global sample index), so that a
//    sample's trajectory depends only on the seed and its index, never on the batch size or on
//    which other samples share its batch. draw_samples() uses this one.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace gm::sampling {

class Noise {
 public:
  Noise() = default;  ///< the default generator
  /// One generator for every draw (implicit, so a torch::Generator can be passed directly).
  Noise(torch::Generator gen);  // NOLINT(google-explicit-constructor)
  /// Row r of every draw comes from its own generator, seeded by mixing `seed` with
  /// first_row + r (splitmix64); rows = the batch's size.
  static Noise per_row(uint64_t seed, int64_t first_row, int64_t rows);

  /// Standard normal noise of x's shape, dtype and device.
  torch::Tensor like(const torch::Tensor& x) const;

 private:
  std::shared_ptr<torch::Generator> gen_;
  std::shared_ptr<std::vector<torch::Generator>> rows_;
};

/// splitmix64 (Steele, Lea & Flood 2014): a well-mixed 64-bit seed from (seed, index).
uint64_t mix_seed(uint64_t seed, uint64_t index);

}  // namespace gm::sampling
