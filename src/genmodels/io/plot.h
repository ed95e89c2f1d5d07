// Figures drawn as images (for PNG output): 2-D point densities, class-coloured scatter plots
// and heat maps.
#pragma once
#include <torch/torch.h>

namespace gm::io {

/// N x 2 points as a size x size grey density image (log counts, dark = dense) of
/// [-extent, extent]^2, y pointing up: uint8 H x W.
torch::Tensor scatter_image(const torch::Tensor& points, double extent = 4.0, int64_t size = 256);

/// N x 2 points as 3 x 3 dots coloured by label (ten-colour palette) on white: uint8 H x W x 3.
torch::Tensor scatter_rgb(const torch::Tensor& points, const torch::Tensor& labels,
                          double extent = 3.5, int64_t size = 512);

/// Heat-map colours (dark blue -> teal -> yellow) of values in [0, 1]: H x W -> H x W x 3 uint8.
torch::Tensor heat_rgb(const torch::Tensor& v01);

}  // namespace gm::io
