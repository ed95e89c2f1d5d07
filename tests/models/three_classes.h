// A small labelled image problem for the class-conditional models' tests: 8x8 gray images of
// three clearly different classes (top half bright, left half bright, a bright centre square) with
// pixel noise 0.15, written as folder:DIR/{a,b,c}/NNN.png (classes a, b, c = 0, 1, 2).
#pragma once
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "genmodels/io/image.h"

namespace gm::test {

/// The noise-free image of class c, in [-1, 1].
inline torch::Tensor class_pattern(int64_t c) {
  torch::Tensor img = -0.8 * torch::ones({8, 8});
  if (c == 0) img.narrow(0, 0, 4).fill_(0.8);
  if (c == 1) img.narrow(1, 0, 4).fill_(0.8);
  if (c == 2) img.narrow(0, 2, 4).narrow(1, 2, 4).fill_(0.8);
  return img;
}

inline void write_three_class_folder(const std::string& dir, int64_t per_class) {
  torch::manual_seed(11);
  for (int64_t c = 0; c < 3; ++c) {
    const std::string sub = dir + "/" + std::string(1, char('a' + c));
    std::filesystem::create_directories(sub);
    for (int64_t i = 0; i < per_class; ++i) {
      torch::Tensor x = (class_pattern(c) + 0.15 * torch::randn({8, 8})).clamp(-1, 1);
      char name[32];
      std::snprintf(name, sizeof name, "/%03d.png", static_cast<int>(i));
      gm::io::write_png(sub + name, ((x + 1) * 127.5).round().to(torch::kUInt8));
    }
  }
}

/// The share of samples x (N x 1 x 8 x 8) whose nearest noise-free class image is class c.
inline double share_nearest_class(const torch::Tensor& x, int64_t c) {
  const torch::Tensor centres =
      torch::stack({class_pattern(0), class_pattern(1), class_pattern(2)}).reshape({3, 64});
  const torch::Tensor nearest = torch::cdist(x.reshape({x.size(0), 64}), centres).argmin(1);
  return (nearest == c).to(torch::kFloat64).mean().item<double>();
}

}  // namespace gm::test
