// Dataset loading by spec string and the image transforms shared by every image source.
#include "genmodels/data/dataset.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>

#include "genmodels/core/error.h"
#include "genmodels/data/idx.h"
#include "genmodels/data/image_folder.h"
#include "genmodels/data/paired.h"
#include "genmodels/data/toy2d.h"
#include "genmodels/io/image.h"

namespace gm::data {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;
namespace {

const char kFashionDir[] = "/usr/share/datasets/fashion-mnist";

const std::vector<std::string> kFashionClasses = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                  "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                  "Bag",         "Ankle boot"};

std::string joined_names() {
  std::string s;
  for (const auto& n : dataset_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

Dataset load_idx_dataset(const std::string& dir, const DataOptions& o, const std::string& spec,
                         bool fashion) {
  std::error_code ec;
  if (dir.empty()) throw Error("dataset spec '" + spec + "' names no folder (use mnist-idx:DIR)");
  if (!fs::is_directory(dir, ec)) {
    if (fashion)
      throw Error("Fashion-MNIST is not installed (" + dir +
                  " is missing); install it: apt-get install dataset-fashion-mnist");
    throw Error("MNIST-format folder " + dir + " does not exist (check " + spec + ")");
  }
  auto [images, labels] = load_mnist_split(dir, o.split);
  if (o.limit > 0 && images.size(0) > o.limit) {
    images = images.slice(0, 0, o.limit);
    labels = labels.slice(0, 0, o.limit);
  }
  Dataset d;
  d.name = spec;
  d.x = io::from_uint8(images.contiguous());
  if (o.channels > 0) d.x = convert_channels(d.x, o.channels);
  if (o.image_size > 0) d.x = resize_center_crop(d.x, o.image_size);
  d.y = labels.contiguous();
  if (fashion) {
    d.class_names = kFashionClasses;
  } else {
    const int64_t n = labels.numel() ? labels.max().item<int64_t>() + 1 : 0;
    for (int64_t i = 0; i < n; ++i) d.class_names.push_back(std::to_string(i));
  }
  return d;
}

}  // namespace

std::vector<std::string> dataset_names() {
  std::vector<std::string> names = {"fashion-mnist",  "fashion-mnist:K", "mnist-idx:DIR",
                                    "folder:DIR",     "captions:DIR",    "fmnist-edges",
                                    "fmnist-inpaint", "paired:DIR",      "paired:DIR_A,DIR_B"};
  for (const auto& t : toy2d_names()) names.push_back(t);
  return names;
}

torch::Tensor convert_channels(const torch::Tensor& images, int64_t channels) {
  const int64_t c = images.size(1);
  if (channels == c) return images;
  if (channels == 3 && c == 1) return images.repeat({1, 3, 1, 1});
  if (channels == 1 && c == 3) {
    torch::Tensor w = torch::tensor({0.299f, 0.587f, 0.114f}, images.options()).view({1, 3, 1, 1});
    return (images * w).sum(1, /*keepdim=*/true);
  }
  throw Error("cannot convert " + std::to_string(c) + "-channel images to " +
              std::to_string(channels) + " channels (use channels 1 or 3)");
}

torch::Tensor resize_center_crop(const torch::Tensor& images, int64_t size) {
  if (size < 1) throw Error("image size must be >= 1, got " + std::to_string(size));
  const int64_t h = images.size(2), w = images.size(3);
  if (h == size && w == size) return images;
  const double scale = static_cast<double>(size) / static_cast<double>(std::min(h, w));
  const int64_t nh = std::max<int64_t>(size, std::llround(h * scale));
  const int64_t nw = std::max<int64_t>(size, std::llround(w * scale));
  torch::Tensor x = images;
  if (nh != h || nw != w) {
    x = F::interpolate(images, F::InterpolateFuncOptions()
                                   .size(std::vector<int64_t>{nh, nw})
                                   .mode(torch::kBilinear)
                                   .align_corners(false)
                                   .antialias(nh < h || nw < w));
  }
  const int64_t top = (nh - size) / 2, left = (nw - size) / 2;
  return x.slice(2, top, top + size).slice(3, left, left + size).clamp(-1.0, 1.0).contiguous();
}

Dataset load_dataset(const std::string& spec, const DataOptions& o) {
  if (o.split != "train" && o.split != "test")
    throw Error("unknown split '" + o.split + "' (valid: train, test)");
  if (o.channels != 0 && o.channels != 1 && o.channels != 3)
    throw Error("data channels must be 0 (native), 1 or 3, got " + std::to_string(o.channels));
  if (o.image_size < 0)
    throw Error("data image_size must be >= 0 (0 = native), got " + std::to_string(o.image_size));
  if (o.limit < 0) throw Error("data limit must be >= 0 (0 = all), got " + std::to_string(o.limit));

  if (spec == "fashion-mnist") return load_idx_dataset(kFashionDir, o, spec, true);
  if (starts_with(spec, "fashion-mnist:")) {  // one class
    const std::string k = spec.substr(14);
    int64_t cls = -1;
    if (!k.empty() && k.size() <= 2 && std::all_of(k.begin(), k.end(), ::isdigit))
      cls = std::stoll(k);
    if (cls < 0 || cls > 9)
      throw Error("dataset '" + spec + "': the class after fashion-mnist: must be 0..9");
    DataOptions all = o;
    all.limit = 0;
    Dataset d = load_idx_dataset(kFashionDir, all, spec, true);
    torch::Tensor idx = (d.y == cls).nonzero().flatten();
    if (o.limit > 0 && idx.size(0) > o.limit) idx = idx.slice(0, 0, o.limit);
    d.x = d.x.index_select(0, idx).contiguous();
    d.y = d.y.index_select(0, idx).contiguous();
    return d;
  }
  if (is_paired_spec(spec)) return load_paired(spec, o);
  if (starts_with(spec, "mnist-idx:")) return load_idx_dataset(spec.substr(10), o, spec, false);
  if (starts_with(spec, "folder:")) return load_image_folder(spec.substr(7), o, spec);
  if (starts_with(spec, "captions:")) return load_caption_folder(spec.substr(9), o, spec);
  for (const auto& toy : toy2d_names()) {
    if (spec != toy) continue;
    int64_t n = o.toy_points;
    if (n < 1) throw Error("toy_points must be >= 1, got " + std::to_string(n));
    if (o.limit > 0) n = std::min(n, o.limit);
    Dataset d;
    d.name = spec;
    d.x = sample_toy2d(toy, n, o.split == "test" ? o.seed + 1 : o.seed);
    d.y = torch::zeros({n}, torch::kInt64);
    return d;
  }
  throw Error("unknown dataset '" + spec + "' (valid: " + joined_names() + ")");
}

}  // namespace gm::data
