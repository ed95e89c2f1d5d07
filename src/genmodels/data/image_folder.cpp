// "folder:DIR" datasets: PNG/JPEG/BMP files decoded with stb_image, labelled by sub-folder.
#include "genmodels/data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/core/progress.h"
#include "genmodels/io/image.h"

namespace gm::data {
namespace fs = std::filesystem;
namespace {

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

// Image files directly in `dir` (recursive = also in its sub-folders), sorted by path.
std::vector<std::string> images_in(const fs::path& dir, bool recursive) {
  std::vector<std::string> out;
  std::error_code ec;
  if (recursive) {
    for (auto it = fs::recursive_directory_iterator(
             dir, fs::directory_options::follow_directory_symlink, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) throw Error("cannot list the folder " + dir.string() + ": " + ec.message());
      if (hidden(it->path())) {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file() && is_image_file(it->path())) out.push_back(it->path().string());
    }
  } else {
    for (const auto& f : list_directory(dir.string()))
      if (!hidden(f) && fs::is_regular_file(f, ec) && is_image_file(f)) out.push_back(f);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

torch::Tensor image_tensor(torch::Tensor px, int64_t channels, int64_t size) {
  if (px.size(2) == 2) px = px.slice(2, 0, 1);  // gray + alpha: drop alpha
  if (px.size(2) == 4) px = px.slice(2, 0, 3);  // RGBA: drop alpha
  torch::Tensor img = io::from_uint8(px.unsqueeze(0).contiguous());
  if (channels > 0) img = convert_channels(img, channels);
  return resize_center_crop(img, size > 0 ? size : std::min(img.size(2), img.size(3)));
}

namespace {

// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
    if (n < 0 || (n > 0 && i + n >= s.size())) return false;  // bad lead byte, or truncated
    uint32_t cp = n == 0 ? c : c & (0x3F >> n);
    for (int k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 0x2) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

Dataset load_caption_folder(const std::string& dir, const DataOptions& options,
                            const std::string& spec) {
  std::vector<std::string> files;
  Dataset d = load_image_folder(dir, options, spec, &files);
  for (const auto& f : files) {
    const fs::path txt = fs::path(f).replace_extension(".txt");
    std::error_code ec;
    if (!fs::is_regular_file(txt, ec))
      throw Error("captions: image " + f + " has no caption file " + txt.string() +
                  " (each image needs a .txt of the same name)");
    const std::string text = read_file(txt.string());
    if (!valid_utf8(text))
      throw Error("captions: " + txt.string() + " is not UTF-8 text (re-save it as UTF-8)");
    const bool blank =
        std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isspace(c); });
    if (blank) throw Error("captions: " + txt.string() + " is empty (write the image's caption)");
    d.captions.push_back(text);
  }
  d.y = torch::arange(static_cast<int64_t>(files.size()), torch::kInt64);
  d.class_names.clear();
  return d;
}

Dataset load_image_folder(const std::string& dir, const DataOptions& options,
                          const std::string& spec, std::vector<std::string>* paths) {
  std::error_code ec;
  if (dir.empty()) throw Error("dataset spec '" + spec + "' names no folder (use folder:DIR)");
  if (!fs::is_directory(dir, ec))
    throw Error("image folder " + dir + " does not exist or is not a directory (check " + spec +
                ")");

  std::vector<std::string> class_dirs;
  for (const auto& f : list_directory(dir))
    if (fs::is_directory(f, ec) && !hidden(f))
      class_dirs.push_back(fs::path(f).filename().string());
  std::sort(class_dirs.begin(), class_dirs.end());

  std::vector<std::pair<std::string, int64_t>> files;  // path, label
  std::vector<std::string> class_names;
  for (const auto& name : class_dirs) {
    auto imgs = images_in(fs::path(dir) / name, true);
    if (imgs.empty()) continue;  // not a class folder
    const int64_t label = static_cast<int64_t>(class_names.size());
    class_names.push_back(name);
    for (auto& p : imgs) files.emplace_back(std::move(p), label);
  }
  const auto loose = images_in(dir, false);
  if (!loose.empty() && !class_names.empty())
    throw Error("image folder " + dir + " mixes class sub-folders with loose images such as " +
                loose.front() + " (move the loose images into a class sub-folder)");
  if (class_names.empty()) {
    for (const auto& p : loose) files.emplace_back(p, 0);
    std::string base = fs::path(dir).lexically_normal().filename().string();
    if (base.empty()) base = fs::path(dir).lexically_normal().parent_path().filename().string();
    class_names.push_back(base.empty() ? "images" : base);
  }
  if (files.empty())
    throw Error("image folder " + dir +
                " contains no PNG/JPEG/BMP images (put them in DIR or DIR/<class>/)");
  if (options.limit > 0 && static_cast<int64_t>(files.size()) > options.limit)
    files.resize(static_cast<size_t>(options.limit));

  // Decode everything as stored first: the default channel count depends on all images.
  std::vector<torch::Tensor> raw;
  raw.reserve(files.size());
  bool any_color = false;
  Progress bar(static_cast<int64_t>(files.size()), 0, "load " + dir, 10.0, /*delay_s=*/1.0);
  for (const auto& f : files) {
    raw.push_back(io::read_image(f.first, 0));
    if (raw.back().size(2) >= 3) any_color = true;
    bar.update(static_cast<int64_t>(raw.size()), "images");
  }
  bar.finish("");
  const int64_t channels = options.channels > 0 ? options.channels : (any_color ? 3 : 1);
  const int64_t size = options.image_size > 0 ? options.image_size
                                              : std::min(raw.front().size(0), raw.front().size(1));

  torch::Tensor x = torch::empty({static_cast<int64_t>(files.size()), channels, size, size});
  torch::Tensor y = torch::empty({static_cast<int64_t>(files.size())}, torch::kInt64);
  for (size_t i = 0; i < raw.size(); ++i) {
    x[static_cast<int64_t>(i)].copy_(image_tensor(raw[i], channels, size)[0]);
    y[static_cast<int64_t>(i)] = files[i].second;
    raw[i] = torch::Tensor();  // free as we go
  }
  Dataset d;
  d.name = spec;
  d.x = x;
  d.y = y;
  d.class_names = class_names;
  if (paths)
    for (const auto& f : files) paths->push_back(f.first);
  return d;
}

}  // namespace gm::data
