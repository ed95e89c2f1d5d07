// Image I/O and conversion: float [-1,1] NCHW <-> uint8 NHWC, image grids, a small PNG writer
// with tEXt metadata (zlib), PNG text-chunk reader, and PNG/JPEG/BMP decoding via stb_image.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>

namespace gm::io {

/// float images in [-1,1], N x C x H x W (C = 1 or 3) -> uint8 N x H x W x C (round, clamp).
torch::Tensor to_uint8(const torch::Tensor& images);

/// uint8 N x H x W [x C] -> float [-1,1] N x C x H x W.
torch::Tensor from_uint8(const torch::Tensor& pixels);

/// Tiles float [-1,1] NCHW images into one uint8 H x W x C grid, `nrow` images per row, `padding`
/// black pixels between images and around the border (torchvision's make_grid layout).
torch::Tensor make_grid(const torch::Tensor& images, int64_t nrow, int64_t padding = 2);

/// Writes a uint8 H x W or H x W x C (C = 1, 3, 4) image as PNG, atomically, with one tEXt chunk
/// per entry of `text` (key -> value; e.g. model, sampler, steps, seed, guidance).
void write_png(const std::string& path, const torch::Tensor& image,
               const std::map<std::string, std::string>& text = {});

/// Reads the tEXt chunks of a PNG (empty map if none). Throws gm::Error naming the file if it is
/// not a PNG.
std::map<std::string, std::string> read_png_text(const std::string& path);

/// Reads PNG/JPEG/BMP (stb_image) as uint8 H x W x C; channels 0 = as stored, 1 or 3 = convert.
/// Throws gm::Error naming the file when it is missing, empty, or unreadable/corrupt.
torch::Tensor read_image(const std::string& path, int channels = 0);

}  // namespace gm::io
