#include "genmodels/models/translate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/data/dataset.h"
#include "genmodels/data/image_folder.h"
#include "genmodels/data/paired.h"
#include "genmodels/io/image.h"
#include "genmodels/io/npy.h"
#include "genmodels/metrics/class_metrics.h"
#include "genmodels/metrics/evaluator.h"
#include "genmodels/metrics/fid.h"

namespace gm {
namespace fs = std::filesystem;
namespace {

torch::Tensor read_one(const std::string& path, int64_t channels, int64_t size) {
  return data::image_tensor(io::read_image(path, 0), channels, size);
}

torch::Tensor read_npy_images(const std::string& path) {
  torch::Tensor t = io::read_npy(path);
  if (t.scalar_type() == torch::kUInt8) {
    if (t.dim() == 3) return io::from_uint8(t.contiguous());
    if (t.dim() == 4 && t.size(3) <= 4)  // drop alpha (gray + alpha, RGBA)
      return io::from_uint8(
          t.narrow(3, 0, t.size(3) == 2 || t.size(3) == 4 ? t.size(3) - 1 : t.size(3))
              .contiguous());
  } else if (t.is_floating_point() && t.dim() == 4) {
    return t.to(torch::kFloat32).clamp(-1, 1);
  }
  throw Error(path +
              ": expected uint8 N x H x W [x C] (as `genmodels sample --npy` writes) or "
              "float [-1, 1] N x C x H x W images");
}

// "fashion-mnist:K" -> K, else -1.
int64_t fashion_class(const std::string& spec) {
  const std::string prefix = "fashion-mnist:";
  if (spec.rfind(prefix, 0) != 0) return -1;
  const std::string k = spec.substr(prefix.size());
  if (k.empty() || !std::all_of(k.begin(), k.end(), ::isdigit)) return -1;
  return std::stoll(k);
}

}  // namespace

TranslateInputs read_translate_inputs(const std::string& input, const DataInfo& info,
                                      const std::string& direction, int64_t channels) {
  if (input.empty()) throw Error("translate: give --input DIR, FILE.png, FILE.npy or a dataset");
  const int64_t size = info.shape.at(1);
  TranslateInputs in;
  in.source = input;
  std::error_code ec;
  if (fs::is_directory(input, ec)) {
    for (const auto& f : list_directory(input)) {
      const std::string name = fs::path(f).filename().string();
      if (fs::is_regular_file(f, ec) && data::is_image_file(f) && name[0] != '.')
        in.names.push_back(name);
    }
    std::sort(in.names.begin(), in.names.end());
    if (in.names.empty())
      throw Error("--input " + input + ": the folder holds no PNG/JPEG/BMP images");
    std::vector<torch::Tensor> xs;
    for (const auto& n : in.names)
      xs.push_back(read_one((fs::path(input) / n).string(), channels, size));
    in.images = torch::cat(xs);
    return in;
  }
  if (fs::exists(input, ec)) {
    if (fs::path(input).extension() == ".npy") {
      in.images =
          data::resize_center_crop(data::convert_channels(read_npy_images(input), channels), size);
    } else {
      in.images = read_one(input, channels, size);
      in.names.push_back(fs::path(input).filename().string());
    }
    return in;
  }
  // A dataset spec: its test split.
  data::DataOptions o;
  o.split = "test";
  o.image_size = size;
  const bool a_to_b = direction != "BtoA";
  if (data::is_paired_spec(input)) {
    const data::Dataset d = data::load_dataset(input, o);
    const int64_t ca = d.channels_a, cb = d.x.size(1) - ca;
    in.images =
        data::convert_channels(a_to_b ? d.x.narrow(1, 0, ca) : d.x.narrow(1, ca, cb), channels);
    in.targets = a_to_b ? d.x.narrow(1, ca, cb) : d.x.narrow(1, 0, ca);
    in.reference = in.targets;
    if (d.num_classes() == 10) in.labels = d.y;  // the Fashion-MNIST derived tasks
    return in;
  }
  if (fs::path(input).has_extension() && data::is_image_file(input))
    throw Error("--input " + input + ": no such file");
  o.channels = channels;
  const data::Dataset d = data::load_dataset(input, o);
  if (!d.is_image()) throw Error("--input " + input + " is not an image dataset");
  in.images = d.x;
  // Unpaired runs: the target domain's spec gives the expected class and the FID reference.
  const std::string target_spec = a_to_b ? info.dataset_b : info.dataset;
  if (!target_spec.empty() && target_spec != input) {
    in.reference = data::load_dataset(target_spec, o).x;
    const int64_t k = fashion_class(target_spec);
    if (k >= 0) in.labels = torch::full({d.size()}, k, torch::kInt64);
  }
  return in;
}

Json translation_metrics(const TranslateInputs& in, const torch::Tensor& outputs,
                         const torch::Tensor& cycle) {
  torch::NoGradGuard no_grad;
  const int64_t n = outputs.size(0);
  Json m = {{"n", n}};
  auto unit = [](const torch::Tensor& x) { return (x.to(torch::kFloat32) + 1) * 0.5; };
  if (in.targets.defined() && in.targets.size(0) >= n &&
      in.targets.sizes().slice(1) == outputs.sizes().slice(1)) {
    const torch::Tensor diff = unit(outputs) - unit(in.targets.slice(0, 0, n));
    m["l1"] = diff.abs().mean().item<double>();
    const torch::Tensor mse = diff.square().flatten(1).mean(1).clamp_min(1e-10);
    m["psnr"] = (-10.0 * torch::log10(mse)).mean().item<double>();
  }
  if (cycle.defined())
    m["cycle_l1"] = (unit(cycle) - unit(in.images.slice(0, 0, n))).abs().mean().item<double>();
  const bool fmnist_shaped =
      outputs.dim() == 4 && outputs.size(1) == 1 && outputs.size(2) == 28 && outputs.size(3) == 28;
  if (fmnist_shaped && (in.labels.defined() || in.reference.defined())) {
    const metrics::Evaluator ev = metrics::Evaluator::load_or_train(metrics::cache_dir(), true);
    if (in.labels.defined()) {
      const torch::Tensor labels = in.labels.slice(0, 0, n);
      const torch::Tensor pred = ev.logits(outputs).argmax(1);
      m["class_accuracy"] = metrics::class_accuracy(pred, labels);
      // What the outputs were taken for (an unpaired translation's misses: still the source
      // class, or a third one).
      m["predicted_class_counts"] = metrics::class_histogram(pred).counts;
      // Per class (where the edges lose what tells shirt from coat), and the evaluator's accuracy
      // on the true targets: the ceiling a perfect translation would reach.
      if (labels.min().item<int64_t>() != labels.max().item<int64_t>())
        m["class_accuracy_per_class"] = metrics::class_accuracy_per_class(pred, labels);
      if (in.targets.defined() && in.targets.size(0) >= n &&
          in.targets.sizes().slice(1) == outputs.sizes().slice(1))
        m["target_class_accuracy"] = ev.accuracy(in.targets.slice(0, 0, n), labels);
    }
    if (in.reference.defined() && in.reference.size(1) == 1 && n >= 2)
      m["fid"] = metrics::fid(ev.features(outputs), ev.features(in.reference));
  }
  return m;
}

}  // namespace gm
