// `genmodels eval` back end: samples -> evaluator features/logits -> metrics JSON and table.
// Metric papers are cited in evaluate.h and in each metric's header.
#include "genmodels/metrics/evaluate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/io/image.h"
#include "genmodels/io/npy.h"
#include "genmodels/metrics/class_metrics.h"
#include "genmodels/metrics/fid.h"
#include "genmodels/metrics/inception_score.h"
#include "genmodels/metrics/kid.h"
#include "genmodels/metrics/precision_recall.h"

namespace gm::metrics {
namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         std::equal(suffix.rbegin(), suffix.rend(), s.rbegin(),
                    [](char a, char b) { return std::tolower(a) == std::tolower(b); });
}

// One metric in the result JSON: {"value": v[, "std": s]}.
Json entry(double value, std::optional<double> std = std::nullopt) {
  Json j{{"value", value}};
  if (std) j["std"] = *std;
  return j;
}

torch::Tensor load_reference_cache(const std::string& path, const std::string& fingerprint) {
  torch::serialize::InputArchive archive;
  archive.load_from(path);
  c10::IValue fp;
  archive.read("fingerprint", fp);
  if (fp.toStringRef() != fingerprint) throw Error(path + " belongs to another evaluator");
  torch::Tensor features;
  archive.read("features", features);
  if (features.dim() != 2 || features.scalar_type() != torch::kFloat64)
    throw Error(path + ": cached features have the wrong shape or type");
  return features;
}

}  // namespace

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = {"fid", "kid", "pr", "acc", "is"};
  return names;
}

torch::Tensor reference_features(const Evaluator& evaluator, const std::string& dir, bool verbose) {
  const std::string fp = evaluator.fingerprint();
  const std::string path = (fs::path(dir) / ("fmnist_test_features_" + fp + ".pt")).string();
  if (fs::exists(path)) {
    try {
      return load_reference_cache(path, fp);
    } catch (const std::exception& e) {
      if (verbose)
        std::cerr << "genmodels: reference cache " << path << " unreadable ("
                  << std::string(e.what()).substr(0, std::string(e.what()).find('\n'))
                  << "); recomputing\n";
    }
  }
  if (verbose) std::cerr << "genmodels: computing Fashion-MNIST test features for " << fp << "\n";
  torch::Tensor features = evaluator.features(load_fashion_mnist("test").first);
  torch::serialize::OutputArchive archive;
  archive.write("features", features);
  archive.write("fingerprint", c10::IValue(fp));
  std::ostringstream out;
  archive.save_to(out);
  make_dirs(dir);
  write_file_atomic(path, out.str());
  return features;
}

torch::Tensor images_to_float(const torch::Tensor& images) {
  if (!images.defined() || images.scalar_type() != torch::kUInt8)
    throw Error("samples must be uint8 images in [0,255], got " +
                std::string(images.defined() ? c10::toString(images.scalar_type()) : "nothing"));
  torch::Tensor x = images;
  if (x.dim() == 3)
    x = x.unsqueeze(1);  // N x H x W
  else if (x.dim() == 4 && (x.size(3) == 1 || x.size(3) == 3) && x.size(1) != 1 && x.size(1) != 3)
    x = x.permute({0, 3, 1, 2});  // N x H x W x C
  else if (x.dim() == 4 && x.size(3) == 1)
    x = x.permute({0, 3, 1, 2});  // N x H x W x 1
  if (x.dim() != 4 || (x.size(1) != 1 && x.size(1) != 3))
    throw Error("samples must be N x H x W, N x H x W x C or N x C x H x W with C = 1 or 3, got " +
                c10::str(images.sizes()));
  torch::Tensor f = x.to(torch::kFloat32);
  if (f.size(1) == 3) {  // ITU-R BT.601 luma
    f = (0.299 * f.select(1, 0) + 0.587 * f.select(1, 1) + 0.114 * f.select(1, 2)).unsqueeze(1);
  }
  return f.div(127.5).sub(1.0).contiguous();
}

Json evaluate_images(const torch::Tensor& images_uint8, const torch::Tensor& requested_labels,
                     const EvalOptions& o) {
  const std::string dir = o.cache_dir.empty() ? cache_dir() : o.cache_dir;
  Evaluator evaluator = Evaluator::load_or_train(dir, o.verbose);
  EvalOptions with_dir = o;
  with_dir.cache_dir = dir;
  return evaluate_images(evaluator, images_uint8, requested_labels, with_dir);
}

Json evaluate_images(const Evaluator& evaluator, const torch::Tensor& images_uint8,
                     const torch::Tensor& requested_labels, const EvalOptions& o) {
  for (const auto& m : o.metrics)
    if (std::find(metric_names().begin(), metric_names().end(), m) == metric_names().end())
      throw Error("unknown metric \"" + m + "\" (valid: fid, kid, pr, acc, is)");
  auto wants = [&](const char* m) {
    return std::find(o.metrics.begin(), o.metrics.end(), m) != o.metrics.end();
  };
  if (o.n < 0) throw Error("--n must be >= 0 (0 = all samples), got " + std::to_string(o.n));
  torch::Tensor x = images_to_float(images_uint8);
  if (x.size(2) != 28 || x.size(3) != 28)
    throw Error("samples are " + std::to_string(x.size(2)) + "x" + std::to_string(x.size(3)) +
                " but the Fashion-MNIST evaluator needs 28x28 images");
  const int64_t n = o.n > 0 ? std::min(o.n, x.size(0)) : x.size(0);
  x = x.slice(0, 0, n);
  torch::Tensor labels;
  if (requested_labels.defined()) {
    if (requested_labels.dim() != 1 || requested_labels.size(0) < n)
      throw Error("requested labels must be int64 N with one label per sample, got shape " +
                  c10::str(requested_labels.sizes()) + " for " + std::to_string(n) + " samples");
    labels = requested_labels.slice(0, 0, n).to(torch::kInt64);
  }
  if (n < 10) throw Error("need at least 10 samples to evaluate, got " + std::to_string(n));

  if (o.verbose) std::cerr << "genmodels: evaluating " << n << " samples\n";
  auto [feats, logits] = evaluator.features_and_logits(x);
  Json metrics = Json::object();
  Json result{
      {"n", n},
      {"seed", o.seed},
      {"evaluator", {{"fingerprint", evaluator.fingerprint()}, {"info", evaluator.info()}}}};
  if (wants("fid") || wants("kid") || wants("pr")) {
    const std::string dir = o.cache_dir.empty() ? cache_dir() : o.cache_dir;
    torch::Tensor ref = reference_features(evaluator, dir, o.verbose);
    result["reference"] = {{"dataset", "fashion-mnist"}, {"split", "test"}, {"n", ref.size(0)}};
    if (wants("fid")) metrics["fid"] = entry(fid(feats, ref));
    if (wants("kid")) {
      KidOptions ko;
      ko.seed = o.seed;
      KidResult k = kid(feats, ref, ko);
      metrics["kid"] = entry(k.mean, k.std);
    }
    if (wants("pr")) {
      PrecisionRecall pr = precision_recall(ref, feats, 3);
      metrics["precision"] = entry(pr.precision);
      metrics["recall"] = entry(pr.recall);
    }
  }
  if (wants("is")) {
    InceptionScore s = inception_score(logits, 10);
    metrics["is"] = entry(s.mean, s.std);
  }
  if (wants("acc")) {
    torch::Tensor pred = logits.argmax(1);
    if (labels.defined()) {
      metrics["class_accuracy"] = entry(class_accuracy(pred, labels));
      metrics["class_accuracy"]["per_class"] = class_accuracy_per_class(pred, labels);
    }
    ClassHistogram h = class_histogram(pred, 10);
    metrics["class_entropy"] = {{"value", h.entropy_nats}, {"normalised", h.entropy_normalised}};
    metrics["class_histogram"] = h.counts;
  }
  result["metrics"] = metrics;
  return result;
}

torch::Tensor load_samples(const std::string& path) {
  if (!fs::exists(path)) throw Error(path + " does not exist (give a .npy file or a PNG folder)");
  if (fs::is_directory(path)) {
    std::vector<std::string> files;
    std::error_code ec;
    for (const auto& f : list_directory(path))
      if (fs::is_regular_file(f, ec) && ends_with(f, ".png")) files.push_back(f);
    std::sort(files.begin(), files.end());
    if (files.empty()) throw Error(path + " holds no .png files");
    std::vector<torch::Tensor> images;
    for (const auto& f : files) {
      images.push_back(io::read_image(f));
      if (images.back().sizes() != images.front().sizes())
        throw Error(f + " is " + c10::str(images.back().sizes()) + " but " + files.front() +
                    " is " + c10::str(images.front().sizes()) + "; all samples must match");
    }
    torch::Tensor t = torch::stack(images);
    if (t.size(3) == 2 || t.size(3) == 4) t = t.slice(3, 0, t.size(3) - 1);  // drop alpha
    return t.size(3) == 1 ? t.squeeze(3) : t.contiguous();
  }
  if (!ends_with(path, ".npy"))
    throw Error(path + ": samples must be a .npy file or a directory of PNGs");
  torch::Tensor t = io::read_npy(path);
  if (t.scalar_type() != torch::kUInt8)
    throw Error(path + ": samples must be uint8, got " + c10::toString(t.scalar_type()) +
                "; convert with array.astype(numpy.uint8)");
  if (t.dim() != 3 && t.dim() != 4)
    throw Error(path + ": samples must be uint8 N x H x W [x C], got shape " + c10::str(t.sizes()));
  return t;
}

std::string format_table(const Json& result) {
  std::ostringstream out;
  char line[160];
  std::snprintf(line, sizeof(line), "%-24s %14s %12s\n", "metric", "value", "+-");
  out << line << std::string(52, '-') << "\n";
  if (!result.contains("metrics")) return out.str();
  for (const auto& [name, v] : result["metrics"].items()) {
    if (name == "class_histogram") continue;
    if (!v.is_object() || !v.contains("value") || !v["value"].is_number()) continue;
    std::string err;
    if (v.contains("std") || v.contains("stderr")) {  // a spread, or an estimate's standard error
      char b[32];
      std::snprintf(b, sizeof(b), "%.6g", v[v.contains("std") ? "std" : "stderr"].get<double>());
      err = b;
    }
    std::snprintf(line, sizeof(line), "%-24s %14.6g %12s\n", name.c_str(), v["value"].get<double>(),
                  err.c_str());
    out << line;
    if (v.contains("normalised")) {
      std::snprintf(line, sizeof(line), "%-24s %14.6g %12s\n", (name + " / log 10").c_str(),
                    v["normalised"].get<double>(), "");
      out << line;
    }
  }
  if (result["metrics"].contains("class_histogram")) {
    out << "class histogram   ";
    for (const auto& c : result["metrics"]["class_histogram"]) out << " " << c.get<int64_t>();
    out << "\n";
  }
  if (result.contains("n")) out << "samples: " << result["n"].get<int64_t>();
  if (result.contains("reference"))
    out << "   reference: fashion-mnist test (" << result["reference"]["n"].get<int64_t>() << ")";
  out << "\n";
  return out.str();
}

}  // namespace gm::metrics
