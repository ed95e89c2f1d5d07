// NumPy .npy files (format v1.0 written; v1-v3 read): uint8, float32, float64, int64, C order.
#pragma once
#include <torch/torch.h>

#include <string>

namespace gm::io {

/// Writes a tensor as NumPy .npy v1.0 (uint8, float32, float64, int64 supported), C order,
/// atomically. Other dtypes throw gm::Error.
void write_npy(const std::string& path, const torch::Tensor& t);

/// Reads a .npy written by numpy or write_npy (uint8, float32, float64, int64; little-endian,
/// C order). Errors name the file.
torch::Tensor read_npy(const std::string& path);

}  // namespace gm::io
