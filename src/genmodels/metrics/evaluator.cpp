// Fashion-MNIST domain evaluator: network, deterministic training, cache with checksum.
// Architecture after the usual small VGG-style MNIST classifiers (Simonyan & Zisserman 2015,
// "Very Deep Convolutional Networks"), with batch normalisation (Ioffe & Szegedy 2015) and
// dropout (Srivastava et al. 2014); optimiser Adam (Kingma & Ba 2015) with cosine decay
// (Loshchilov & Hutter 2017, "SGDR").
#include "genmodels/metrics/evaluator.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/core/progress.h"
#include "genmodels/core/runtime.h"
#include "genmodels/data/dataset.h"

namespace gm::metrics {
namespace fs = std::filesystem;

namespace {

// Bump when the architecture or the file layout changes: old caches are then retrained.
constexpr int64_t kFormatVersion = 1;
constexpr int64_t kFeatureDim = 128;
constexpr int64_t kBatchEval = 1000;

}  // namespace

struct EvaluatorNetImpl : torch::nn::Module {
  EvaluatorNetImpl() {
    auto conv = [](int64_t in, int64_t out) {
      return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(false));
    };
    conv1 = register_module("conv1", conv(1, 32));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(32));
    conv2 = register_module("conv2", conv(32, 32));
    bn2 = register_module("bn2", torch::nn::BatchNorm2d(32));
    conv3 = register_module("conv3", conv(32, 64));
    bn3 = register_module("bn3", torch::nn::BatchNorm2d(64));
    conv4 = register_module("conv4", conv(64, 64));
    bn4 = register_module("bn4", torch::nn::BatchNorm2d(64));
    fc1 = register_module("fc1", torch::nn::Linear(64 * 7 * 7, kFeatureDim));
    fc2 = register_module("fc2", torch::nn::Linear(kFeatureDim, 10));
  }

  /// Penultimate activations: ReLU(fc1(conv trunk(x))).
  torch::Tensor features(torch::Tensor x) {
    x = torch::relu(bn1(conv1(x)));
    x = torch::max_pool2d(torch::relu(bn2(conv2(x))), 2);
    x = torch::relu(bn3(conv3(x)));
    x = torch::max_pool2d(torch::relu(bn4(conv4(x))), 2);
    x = torch::dropout(x.flatten(1), 0.25, is_training());
    return torch::relu(fc1(x));
  }

  /// Logits = fc2(dropout(features)).
  torch::Tensor head(const torch::Tensor& f) { return fc2(torch::dropout(f, 0.5, is_training())); }

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, conv4{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr}, bn4{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};

namespace {

// FNV-1a 64-bit over names, shapes and raw float bytes of every parameter and buffer.
std::string hash_state(EvaluatorNetImpl& net) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  };
  auto mix_tensor = [&](const std::string& name, const torch::Tensor& t) {
    mix(name.data(), name.size());
    torch::Tensor c = t.detach().contiguous().cpu();
    for (int64_t s : c.sizes()) mix(&s, sizeof(s));
    mix(c.data_ptr(), c.numel() * c.element_size());
  };
  for (const auto& p : net.named_parameters()) mix_tensor(p.key(), p.value());
  for (const auto& b : net.named_buffers()) mix_tensor(b.key(), b.value());
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// Runs `fn` over `images` in eval mode and no-grad, kBatchEval rows at a time.
template <typename Fn>
void for_batches(EvaluatorNetImpl& net, const torch::Tensor& images, Fn fn) {
  if (images.dim() != 4 || images.size(1) != 1 || images.size(2) != 28 || images.size(3) != 28)
    throw Error("evaluator input must be N x 1 x 28 x 28 float in [-1,1], got shape " +
                c10::str(images.sizes()));
  torch::NoGradGuard no_grad;
  const bool was_training = net.is_training();
  net.eval();
  Progress bar(images.size(0), 0, "features", 10.0, /*delay_s=*/1.0);
  for (int64_t i = 0; i < images.size(0); i += kBatchEval) {
    torch::Tensor x = images.slice(0, i, std::min(i + kBatchEval, images.size(0)));
    fn(x.to(torch::kFloat32).contiguous());
    bar.update(std::min(i + kBatchEval, images.size(0)), "images");
  }
  bar.finish("");
  net.train(was_training);
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> load_fashion_mnist(const std::string& split) {
  data::DataOptions o;
  o.split = split;
  data::Dataset d = data::load_dataset("fashion-mnist", o);
  return {d.x, d.y};
}

std::string cache_dir() {
  if (const char* d = std::getenv("GENMODELS_CACHE"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/genmodels";
  if (const char* d = std::getenv("HOME"); d && *d) return std::string(d) + "/.cache/genmodels";
  throw Error("no cache directory: set GENMODELS_CACHE (or HOME) to a writable folder");
}

Evaluator::Evaluator(std::shared_ptr<EvaluatorNetImpl> net, Json info)
    : net_(std::move(net)), info_(std::move(info)) {}

Evaluator Evaluator::train(const EvaluatorOptions& o, bool verbose) {
  if (o.epochs < 1 || o.batch_size < 1 || !(o.lr > 0) || o.limit < 0)
    throw Error("evaluator options: epochs, batch_size and lr must be positive, limit >= 0");
  const auto t0 = std::chrono::steady_clock::now();
  // Callers may hold a NoGradGuard (translate, eval): the evaluator trains whatever their mode.
  torch::AutoGradMode grad_mode(true);
  set_threads(0);
  torch::manual_seed(o.seed);  // weight init and dropout
  auto net = std::make_shared<EvaluatorNetImpl>();
  auto [x, y] = load_fashion_mnist("train");
  if (o.limit > 0 && o.limit < x.size(0)) {
    x = x.slice(0, 0, o.limit);
    y = y.slice(0, 0, o.limit);
  }
  const int64_t n = x.size(0);
  const int64_t steps_per_epoch = (n + o.batch_size - 1) / o.batch_size;
  const int64_t total = steps_per_epoch * o.epochs;
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(o.lr));
  std::mt19937_64 rng(o.seed);  // batch order
  std::vector<int64_t> order(n);
  int64_t step = 0;
  net->train();
  Progress bar(total, 0, "evaluator", 10.0, /*delay_s=*/1.0);
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    // Fisher-Yates with our own draw, so the order does not depend on the standard library.
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng() % uint64_t(i + 1)]);
    torch::Tensor perm = torch::tensor(order, torch::kInt64);
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t b = 0; b < steps_per_epoch; ++b, ++step) {
      torch::Tensor idx = perm.slice(0, b * o.batch_size, std::min(n, (b + 1) * o.batch_size));
      torch::Tensor xb = x.index_select(0, idx), yb = y.index_select(0, idx);
      // cosine decay: lr_t = lr * (1 + cos(pi t / T)) / 2
      const double lr = o.lr * 0.5 * (1 + std::cos(M_PI * double(step) / double(total)));
      for (auto& g : opt.param_groups())
        static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
      torch::Tensor logits = net->head(net->features(xb));
      torch::Tensor loss = torch::nn::functional::cross_entropy(logits, yb);
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += loss.item<double>() * double(idx.size(0));
      correct += logits.argmax(1).eq(yb).sum().item<int64_t>();
      if (verbose)
        bar.update(step + 1, "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(o.epochs) +
                                 "  loss " +
                                 std::to_string(loss_sum / double(b * o.batch_size + idx.size(0))));
    }
    if (verbose && epoch + 1 == o.epochs)
      bar.finish("done: train acc " + std::to_string(double(correct) / double(n)) + " in " +
                 format_duration(
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
  }
  net->eval();
  Evaluator ev(net, Json::object());
  auto [xt, yt] = load_fashion_mnist("test");
  if (o.limit > 0) {  // quick runs (tests) are checked on the first 1000 test images only
    xt = xt.slice(0, 0, 1000);
    yt = yt.slice(0, 0, 1000);
  }
  const double test_acc = ev.accuracy(xt, yt);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ev.info_ = Json{{"epochs", o.epochs},
                  {"batch_size", o.batch_size},
                  {"lr", o.lr},
                  {"seed", o.seed},
                  {"limit", o.limit},
                  {"train_examples", n},
                  {"test_accuracy", test_acc},
                  {"test_examples", xt.size(0)},
                  {"train_seconds", seconds},
                  {"threads", torch::get_num_threads()}};
  if (verbose)
    std::cerr << "evaluator: test accuracy " << test_acc << " after " << seconds << " s\n";
  return ev;
}

void Evaluator::save(const std::string& path) const {
  torch::serialize::OutputArchive archive;
  for (const auto& p : net_->named_parameters()) archive.write(p.key(), p.value());
  for (const auto& b : net_->named_buffers()) archive.write(b.key(), b.value(), true);
  archive.write("format_version", c10::IValue(kFormatVersion));
  archive.write("fingerprint", c10::IValue(fingerprint()));
  archive.write("info", c10::IValue(info_.dump()));
  std::ostringstream out;
  archive.save_to(out);
  fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) make_dirs(parent.string());
  write_file_atomic(path, out.str());
}

Evaluator Evaluator::load(const std::string& path) {
  if (!fs::exists(path)) throw Error(path + " does not exist (train it with Evaluator::train)");
  auto net = std::make_shared<EvaluatorNetImpl>();
  Json info;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    c10::IValue version, stored, info_text;
    archive.read("format_version", version);
    if (version.toInt() != kFormatVersion)
      throw Error(path + " has evaluator format " + std::to_string(version.toInt()) +
                  ", expected " + std::to_string(kFormatVersion) + " (delete it to retrain)");
    torch::NoGradGuard no_grad;
    for (auto& p : net->named_parameters()) archive.read(p.key(), p.value());
    for (auto& b : net->named_buffers()) archive.read(b.key(), b.value(), true);
    archive.read("fingerprint", stored);
    archive.read("info", info_text);
    info = Json::parse(info_text.toStringRef());
    if (stored.toStringRef() != hash_state(*net))
      throw Error(path + ": weights do not match the stored checksum (delete it to retrain)");
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    throw Error(path + " is not a readable evaluator file (" + what + "); delete it to retrain");
  }
  net->eval();
  return Evaluator(net, info);
}

Evaluator Evaluator::load_or_train(const std::string& dir, bool verbose,
                                   const EvaluatorOptions& options) {
  const std::string path = (fs::path(dir) / kEvaluatorFile).string();
  if (fs::exists(path)) {
    try {
      return load(path);
    } catch (const std::exception& e) {
      if (verbose) std::cerr << "genmodels: " << e.what() << "; retraining the evaluator\n";
    }
  } else if (verbose) {
    std::cerr << "genmodels: no evaluator at " << path << "; training one (a few minutes)\n";
  }
  Evaluator ev = train(options, verbose);
  ev.save(path);
  if (verbose) std::cerr << "genmodels: evaluator saved to " << path << "\n";
  return ev;
}

std::pair<torch::Tensor, torch::Tensor> Evaluator::features_and_logits(
    const torch::Tensor& images) const {
  std::vector<torch::Tensor> fs_, ls;
  for_batches(*net_, images, [&](const torch::Tensor& x) {
    torch::Tensor f = net_->features(x);
    fs_.push_back(f.to(torch::kFloat64));
    ls.push_back(net_->head(f));
  });
  if (fs_.empty()) return {torch::empty({0, kFeatureDim}, torch::kFloat64), torch::empty({0, 10})};
  return {torch::cat(fs_), torch::cat(ls)};
}

torch::Tensor Evaluator::features(const torch::Tensor& images) const {
  return features_and_logits(images).first;
}

torch::Tensor Evaluator::logits(const torch::Tensor& images) const {
  return features_and_logits(images).second;
}

double Evaluator::accuracy(const torch::Tensor& images, const torch::Tensor& labels) const {
  if (labels.dim() != 1 || labels.size(0) != images.size(0))
    throw Error("accuracy: labels must be int64 N matching the " + std::to_string(images.size(0)) +
                " images, got shape " + c10::str(labels.sizes()));
  if (images.size(0) == 0) return 0.0;
  torch::Tensor pred = logits(images).argmax(1);
  return pred.eq(labels.to(torch::kInt64)).to(torch::kFloat64).mean().item<double>();
}

std::string Evaluator::fingerprint() const { return hash_state(*net_); }

int64_t Evaluator::feature_dim() const { return kFeatureDim; }

}  // namespace gm::metrics
