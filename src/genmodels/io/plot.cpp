// Figures drawn as images: 2-D point densities, coloured scatter plots and heat maps.
#include "genmodels/io/plot.h"

#include <algorithm>

namespace gm::io {

// Renders N x 2 points as a 256 x 256 density image (log counts), for 2-D toy samples.
torch::Tensor scatter_image(const torch::Tensor& points, double extent, int64_t size) {
  torch::Tensor p = points.to(torch::kFloat64);
  torch::Tensor ij = ((p + extent) / (2 * extent) * size).floor().to(torch::kInt64);
  torch::Tensor keep = (ij >= 0).all(1) & (ij < size).all(1);
  ij = ij.index({keep});
  torch::Tensor counts = torch::zeros({size * size}, torch::kFloat64);
  // row = size-1-y so that y points up
  torch::Tensor flat = (size - 1 - ij.select(1, 1)) * size + ij.select(1, 0);
  counts.index_add_(0, flat, torch::ones({flat.size(0)}, torch::kFloat64));
  torch::Tensor img = torch::log1p(counts.view({size, size}));
  img = img / std::max(1e-9, img.max().item<double>());
  return (255.0 * (1.0 - img)).round().to(torch::kUInt8);  // dark = dense
}

torch::Tensor scatter_rgb(const torch::Tensor& points, const torch::Tensor& labels, double extent,
                          int64_t size) {
  // Tableau-like palette of ten distinguishable colours.
  static const uint8_t palette[10][3] = {
      {31, 119, 180}, {255, 127, 14},  {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
      {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
  torch::Tensor img = torch::full({size, size, 3}, 255, torch::kUInt8);
  torch::Tensor p = points.to(torch::kFloat64).contiguous();
  torch::Tensor l = labels.defined() ? labels.to(torch::kInt64).contiguous()
                                     : torch::zeros({p.size(0)}, torch::kInt64);
  auto pa = p.accessor<double, 2>();
  auto la = l.accessor<int64_t, 1>();
  auto ia = img.accessor<uint8_t, 3>();
  for (int64_t i = 0; i < p.size(0); ++i) {
    const int64_t cx = static_cast<int64_t>((pa[i][0] + extent) / (2 * extent) * size);
    const int64_t cy = size - 1 - static_cast<int64_t>((pa[i][1] + extent) / (2 * extent) * size);
    const uint8_t* col = palette[((la[i] % 10) + 10) % 10];
    for (int64_t dy = -1; dy <= 1; ++dy)
      for (int64_t dx = -1; dx <= 1; ++dx) {
        const int64_t x = cx + dx, y = cy + dy;
        if (x < 0 || y < 0 || x >= size || y >= size) continue;
        for (int c = 0; c < 3; ++c) ia[y][x][c] = col[c];
      }
  }
  return img;
}

// Heat-map colours (dark blue -> teal -> yellow) of values in [0, 1]: H x W -> H x W x 3 uint8.
torch::Tensor heat_rgb(const torch::Tensor& v01) {
  static const float anchors[5][3] = {
      {13, 8, 135}, {84, 39, 143}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  torch::Tensor v = v01.clamp(0, 1).contiguous().to(torch::kFloat32) * 4;
  torch::Tensor lo = v.floor().clamp(0, 3).to(torch::kLong), f = (v - lo).unsqueeze(-1);
  torch::Tensor pal = torch::from_blob(const_cast<float*>(&anchors[0][0]), {5, 3}).clone();
  torch::Tensor a = pal.index_select(0, lo.reshape(-1)).view({v.size(0), v.size(1), 3});
  torch::Tensor b = pal.index_select(0, (lo + 1).reshape(-1)).view({v.size(0), v.size(1), 3});
  return (a * (1 - f) + b * f).round().to(torch::kUInt8);
}

}  // namespace gm::io
