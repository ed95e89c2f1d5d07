// Two-domain datasets for translation (see paired.h).
#include "genmodels/data/paired.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <system_error>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/data/image_folder.h"
#include "genmodels/io/image.h"

namespace gm::data {
namespace fs = std::filesystem;
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

// The folder of a split: DIR/train or DIR/test (DIR/val when there is no test) when DIR has a
// train sub-folder, else DIR itself for both splits.
fs::path split_dir(const std::string& dir, const std::string& split, const std::string& spec) {
  std::error_code ec;
  if (dir.empty()) throw Error("dataset spec '" + spec + "' names no folder");
  if (!fs::is_directory(dir, ec))
    throw Error("folder " + dir + " does not exist or is not a directory (check " + spec + ")");
  if (!fs::is_directory(fs::path(dir) / "train", ec)) return dir;
  if (split == "train") return fs::path(dir) / "train";
  for (const char* name : {"test", "val"})
    if (fs::is_directory(fs::path(dir) / name, ec)) return fs::path(dir) / name;
  throw Error("folder " + dir + " has a train/ sub-folder but no test/ or val/ one (" + spec + ")");
}

// Image file names directly in `dir`, sorted.
std::vector<std::string> image_names(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& f : list_directory(dir.string())) {
    const std::string name = fs::path(f).filename().string();
    if (!name.empty() && name[0] != '.' && fs::is_regular_file(f, ec) && is_image_file(f))
      out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Stacks per-example halves into a two-domain dataset; channels default to the richest image.
Dataset stack_pairs(std::vector<std::pair<torch::Tensor, torch::Tensor>> raw, const DataOptions& o,
                    const std::string& spec) {
  if (o.limit > 0 && static_cast<int64_t>(raw.size()) > o.limit)
    raw.resize(static_cast<size_t>(o.limit));
  int64_t ca = 1, cb = 1;
  for (const auto& [a, b] : raw) {
    ca = std::max<int64_t>(ca, a.size(2) >= 3 ? 3 : 1);
    cb = std::max<int64_t>(cb, b.size(2) >= 3 ? 3 : 1);
  }
  if (o.channels > 0) ca = cb = o.channels;
  const auto& first = raw.front().first;
  const int64_t size = o.image_size > 0 ? o.image_size : std::min(first.size(0), first.size(1));
  std::vector<torch::Tensor> xs;
  xs.reserve(raw.size());
  for (auto& [a, b] : raw) {
    xs.push_back(torch::cat({image_tensor(a, ca, size), image_tensor(b, cb, size)}, 1));
    a = b = torch::Tensor();
  }
  Dataset d;
  d.name = spec;
  d.x = torch::cat(xs);
  d.y = torch::zeros({d.x.size(0)}, torch::kInt64);
  d.class_names = {"pairs"};
  d.channels_a = ca;
  return d;
}

Dataset load_side_by_side(const std::string& dir, const DataOptions& o, const std::string& spec) {
  const fs::path d = split_dir(dir, o.split, spec);
  const auto names = image_names(d);
  if (names.empty())
    throw Error("folder " + d.string() + " holds no PNG/JPEG/BMP images (" + spec +
                " expects A|B side-by-side images)");
  std::vector<std::pair<torch::Tensor, torch::Tensor>> raw;
  for (const auto& n : names) {
    const std::string path = (d / n).string();
    raw.push_back(split_side_by_side(io::read_image(path, 0).permute({2, 0, 1}), path));
    raw.back().first = raw.back().first.permute({1, 2, 0}).contiguous();
    raw.back().second = raw.back().second.permute({1, 2, 0}).contiguous();
  }
  return stack_pairs(std::move(raw), o, spec);
}

Dataset load_two_folders(const std::string& dir_a, const std::string& dir_b, const DataOptions& o,
                         const std::string& spec) {
  const fs::path da = split_dir(dir_a, o.split, spec), db = split_dir(dir_b, o.split, spec);
  const auto names_a = image_names(da), names_b = image_names(db);
  if (names_a.empty()) throw Error("folder " + da.string() + " holds no images (" + spec + ")");
  for (const auto& n : names_a)
    if (!std::binary_search(names_b.begin(), names_b.end(), n))
      throw Error((da / n).string() + " has no partner " + (db / n).string() + " (" + spec +
                  " pairs files by name)");
  for (const auto& n : names_b)
    if (!std::binary_search(names_a.begin(), names_a.end(), n))
      throw Error((db / n).string() + " has no partner " + (da / n).string() + " (" + spec +
                  " pairs files by name)");
  std::vector<std::pair<torch::Tensor, torch::Tensor>> raw;
  for (const auto& n : names_a)
    raw.emplace_back(io::read_image((da / n).string(), 0), io::read_image((db / n).string(), 0));
  return stack_pairs(std::move(raw), o, spec);
}

}  // namespace

bool is_paired_spec(const std::string& spec) {
  return spec == "fmnist-edges" || spec == "fmnist-inpaint" || starts_with(spec, "paired:");
}

std::pair<torch::Tensor, torch::Tensor> split_side_by_side(const torch::Tensor& image,
                                                           const std::string& path) {
  const int64_t w = image.size(-1);
  if (w % 2 != 0)
    throw Error(path + " is " + std::to_string(w) +
                " pixels wide: a side-by-side A|B image needs an even width");
  return {image.narrow(-1, 0, w / 2), image.narrow(-1, w / 2, w / 2)};
}

torch::Tensor sobel_edges(const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  const torch::Tensor x = (images.to(torch::kFloat32) + 1) * 0.5;  // [0, 1]
  const torch::Tensor gray = x.size(1) == 1 ? x : x.mean(1, true);
  const torch::Tensor kx =
      torch::tensor({-1.f, 0.f, 1.f, -2.f, 0.f, 2.f, -1.f, 0.f, 1.f}).view({1, 1, 3, 3});
  const torch::Tensor ky = kx.transpose(2, 3).contiguous();
  const torch::Tensor gx = torch::conv2d(gray, kx, {}, 1, 1),
                      gy = torch::conv2d(gray, ky, {}, 1, 1);
  const torch::Tensor mag = torch::sqrt(gx * gx + gy * gy);
  const torch::Tensor peak = std::get<0>(mag.flatten(1).max(1)).view({-1, 1, 1, 1});
  const torch::Tensor edge = (mag >= 0.5 * peak).logical_and(peak > 0);
  return edge.to(torch::kFloat32) * 2 - 1;
}

torch::Tensor inpaint_boxes(const torch::Tensor& images, uint64_t seed) {
  torch::Tensor out = images.clone();
  const int64_t h = images.size(2), w = images.size(3);
  const int64_t side = std::max<int64_t>(1, std::llround(0.4 * std::min(h, w)));
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const torch::Tensor top = at::randint(0, h - side + 1, {images.size(0)}, gen, torch::kInt64);
  const torch::Tensor left = at::randint(0, w - side + 1, {images.size(0)}, gen, torch::kInt64);
  auto t = top.accessor<int64_t, 1>(), l = left.accessor<int64_t, 1>();
  for (int64_t i = 0; i < images.size(0); ++i)
    out[i].narrow(1, t[i], side).narrow(2, l[i], side).zero_();
  return out;
}

Dataset load_paired(const std::string& spec, const DataOptions& o) {
  if (spec == "fmnist-edges" || spec == "fmnist-inpaint") {
    DataOptions base = o;
    Dataset items = load_dataset("fashion-mnist", base);
    const torch::Tensor a = spec == "fmnist-edges"
                                ? sobel_edges(items.x)
                                : inpaint_boxes(items.x, o.split == "test" ? 1000003 : 17);
    const torch::Tensor a_c =
        items.x.size(1) == 3 && spec == "fmnist-edges" ? a.expand({-1, 3, -1, -1}) : a;
    Dataset d = items;
    d.name = spec;
    d.x = torch::cat({a_c, items.x}, 1).contiguous();
    d.channels_a = a_c.size(1);
    return d;
  }
  if (starts_with(spec, "paired:")) {
    const std::string rest = spec.substr(7);
    const auto comma = rest.find(',');
    if (comma == std::string::npos) return load_side_by_side(rest, o, spec);
    return load_two_folders(rest.substr(0, comma), rest.substr(comma + 1), o, spec);
  }
  throw Error("'" + spec + "' is not a paired dataset (fmnist-edges, fmnist-inpaint, " +
              "paired:DIR, paired:DIR_A,DIR_B)");
}

Dataset make_unpaired(const Dataset& a, const Dataset& b, uint64_t seed) {
  if (a.size() == 0 || b.size() == 0)
    throw Error(std::string("unpaired data: domain ") +
                (a.size() == 0 ? "A (" + a.name + ")" : "B (" + b.name + ")") + " is empty");
  if (!a.is_image() || !b.is_image())
    throw Error("unpaired data: both domains must be images (" + a.name + ", " + b.name + ")");
  if (a.x.size(1) != b.x.size(1))
    throw Error("unpaired data: domain A (" + a.name + ") has " + std::to_string(a.x.size(1)) +
                " channels and domain B (" + b.name + ") " + std::to_string(b.x.size(1)) +
                "; convert with --set data.channels=1 or 3");
  if (a.x.size(2) != b.x.size(2) || a.x.size(3) != b.x.size(3))
    throw Error("unpaired data: domain A (" + a.name + ") is " + std::to_string(a.x.size(2)) + "x" +
                std::to_string(a.x.size(3)) + " and domain B (" + b.name + ") " +
                std::to_string(b.x.size(2)) + "x" + std::to_string(b.x.size(3)) +
                "; resize with --set data.image_size=N");
  const int64_t n = std::max(a.size(), b.size());
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const torch::Tensor ia = torch::arange(n, torch::kInt64).remainder(a.size());
  const torch::Tensor ib = at::randperm(n, gen, torch::kInt64).remainder(b.size());
  Dataset d;
  d.name = a.name + " <-> " + b.name;
  d.x = torch::cat({a.x.index_select(0, ia), b.x.index_select(0, ib)}, 1).contiguous();
  d.y = a.y.index_select(0, ia);
  d.class_names = a.class_names;
  d.channels_a = a.x.size(1);
  return d;
}

}  // namespace gm::data
