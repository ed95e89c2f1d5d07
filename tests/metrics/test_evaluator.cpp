// Domain evaluator (deterministic training on a small subset, save/load, corrupt-cache rebuild)
// and the evaluate_images / load_samples / format_table entry points. Never trains the full
// evaluator: every training here uses 2000 images and one epoch.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/metrics/evaluate.h"
#include "genmodels/metrics/evaluator.h"

namespace gm::metrics {
namespace {
namespace fs = std::filesystem;

EvaluatorOptions small_options() {
  EvaluatorOptions o;
  o.epochs = 1;
  o.limit = 2000;
  o.batch_size = 32;
  o.seed = 7;
  return o;
}

// One small evaluator shared by the tests that only use it.
const Evaluator& small_evaluator() {
  static const Evaluator ev = Evaluator::train(small_options(), false);
  return ev;
}

std::string temp_dir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("gm_metrics_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

torch::Tensor to_uint8(const torch::Tensor& x) {
  return ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch::kUInt8);
}

TEST(Evaluator, TrainingIsDeterministicAndBeatsChance) {
  const Evaluator& a = small_evaluator();
  // The second copy trains under a NoGradGuard, as `translate` and `eval` call it on first use.
  Evaluator b = [] {
    torch::NoGradGuard no_grad;
    return Evaluator::train(small_options(), false);
  }();
  EXPECT_EQ(a.fingerprint(), b.fingerprint());
  auto [x, y] = load_fashion_mnist("test");
  const double acc = a.accuracy(x.slice(0, 0, 2000), y.slice(0, 0, 2000));
  EXPECT_GT(acc, 0.6);  // chance is 0.1
  EXPECT_NEAR(a.info().at("test_accuracy").get<double>(),
              a.accuracy(x.slice(0, 0, 1000), y.slice(0, 0, 1000)), 1e-12);
}

TEST(Evaluator, FeaturesAreFloat64AndBatchIndependent) {
  auto [x, y] = load_fashion_mnist("test");
  torch::Tensor f = small_evaluator().features(x.slice(0, 0, 1500));
  EXPECT_EQ(f.scalar_type(), torch::kFloat64);
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{1500, 128}));
  EXPECT_GE(f.min().item<double>(), 0.0);  // post-ReLU
  // eval mode: a row's features do not depend on the rest of the batch
  torch::Tensor f1 = small_evaluator().features(x.slice(0, 1200, 1201));
  EXPECT_LT((f1[0] - f[1200]).abs().max().item<double>(), 1e-4);
  EXPECT_THROW(small_evaluator().features(torch::zeros({2, 28, 28})), gm::Error);
}

TEST(Evaluator, SaveLoadRoundTripAndCorruptCacheIsRebuilt) {
  const std::string dir = temp_dir("cache");
  const std::string path = dir + "/" + kEvaluatorFile;
  small_evaluator().save(path);
  Evaluator loaded = Evaluator::load(path);
  EXPECT_EQ(loaded.fingerprint(), small_evaluator().fingerprint());
  auto [x, y] = load_fashion_mnist("test");
  torch::Tensor xs = x.slice(0, 0, 300);
  EXPECT_TRUE(torch::equal(loaded.features(xs), small_evaluator().features(xs)));

  write_file_atomic(path, std::string("this is not a torch archive"));
  EXPECT_THROW(Evaluator::load(path), gm::Error);
  EvaluatorOptions tiny = small_options();
  tiny.limit = 300;
  Evaluator rebuilt = Evaluator::load_or_train(dir, false, tiny);
  EXPECT_EQ(rebuilt.info().at("train_examples").get<int64_t>(), 300);     // retrained with `tiny`
  EXPECT_EQ(Evaluator::load(path).fingerprint(), rebuilt.fingerprint());  // and saved again
  EXPECT_EQ(Evaluator::load_or_train(dir, false, small_options()).fingerprint(),
            rebuilt.fingerprint());  // a valid cache is loaded, not retrained

  // a truncated file is corrupt too; the retrain is deterministic
  std::string bytes = read_file(path);
  write_file_atomic(path, bytes.substr(0, bytes.size() / 2));
  EXPECT_EQ(Evaluator::load_or_train(dir, false, tiny).fingerprint(), rebuilt.fingerprint());
  fs::remove_all(dir);
}

TEST(Evaluator, MissingFileThrowsNamingIt) {
  try {
    Evaluator::load("/nonexistent/dir/fmnist_evaluator.pt");
    FAIL();
  } catch (const gm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/fmnist_evaluator.pt"),
              std::string::npos);
  }
}

TEST(Evaluate, TestImagesAgainstTestStatistics) {
  const std::string dir = temp_dir("eval");
  auto [x, y] = load_fashion_mnist("test");
  EvalOptions o;
  o.n = 2000;
  o.cache_dir = dir;
  o.verbose = false;
  Json r = evaluate_images(small_evaluator(), to_uint8(x), y, o);
  const Json& m = r["metrics"];
  EXPECT_EQ(r["n"].get<int64_t>(), 2000);
  EXPECT_LT(m["fid"]["value"].get<double>(), 2.0);  // a subset of the reference itself
  // KID of a subset of the reference is ~0 (its scale depends on the feature norms)
  EXPECT_LT(std::abs(m["kid"]["value"].get<double>()), 3 * m["kid"]["std"].get<double>())
      << m.dump();
  EXPECT_GT(m["precision"]["value"].get<double>(), 0.6);
  EXPECT_GT(m["class_accuracy"]["value"].get<double>(), 0.6);
  EXPECT_GT(m["class_entropy"]["normalised"].get<double>(), 0.9);
  EXPECT_GT(m["is"]["value"].get<double>(), 2.0);
  EXPECT_TRUE(fs::exists(dir + "/fmnist_test_features_" + small_evaluator().fingerprint() + ".pt"));

  // uniform noise is far from the reference
  torch::manual_seed(0);
  torch::Tensor noise = torch::randint(0, 256, {1000, 28, 28, 1}, torch::kUInt8);
  o.metrics = {"fid", "acc"};
  Json rn = evaluate_images(small_evaluator(), noise, torch::Tensor(), o);
  EXPECT_GT(rn["metrics"]["fid"]["value"].get<double>(), 10 * m["fid"]["value"].get<double>());
  EXPECT_FALSE(rn["metrics"].contains("class_accuracy"));
  EXPECT_FALSE(rn["metrics"].contains("kid"));
  const std::string table = format_table(r);
  EXPECT_NE(table.find("fid"), std::string::npos);
  EXPECT_NE(table.find("recall"), std::string::npos);

  o.metrics = {"fid", "bogus"};
  EXPECT_THROW(evaluate_images(small_evaluator(), noise, torch::Tensor(), o), gm::Error);
  EXPECT_THROW(evaluate_images(small_evaluator(), torch::zeros({20, 28, 28}), torch::Tensor(), o),
               gm::Error);  // float input
  fs::remove_all(dir);
}

// Writes an 8-bit PNG (filter 0 rows) for load_samples.
void write_png(const std::string& path, const torch::Tensor& hwc) {
  const int h = hwc.size(0), w = hwc.size(1), c = hwc.size(2);
  std::string raw;
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);
    raw.append(reinterpret_cast<const char*>(hwc[y].contiguous().data_ptr<uint8_t>()), w * c);
  }
  uLongf zlen = compressBound(raw.size());
  std::string z(zlen, '\0');
  compress(reinterpret_cast<Bytef*>(z.data()), &zlen, reinterpret_cast<const Bytef*>(raw.data()),
           raw.size());
  z.resize(zlen);
  auto be = [](uint32_t v) {
    return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  };
  auto chunk = [&](const std::string& type, const std::string& data) {
    std::string td = type + data;
    uint32_t crc = crc32(0, reinterpret_cast<const Bytef*>(td.data()), td.size());
    return be(data.size()) + td + be(crc);
  };
  std::string ihdr = be(w) + be(h) + std::string{8, char(c == 1 ? 0 : 2), 0, 0, 0};
  write_file_atomic(path, std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", ihdr) +
                              chunk("IDAT", z) + chunk("IEND", ""));
}

TEST(LoadSamples, NpyAndPngFolder) {
  const std::string dir = temp_dir("samples");
  torch::manual_seed(5);
  torch::Tensor imgs = torch::randint(0, 256, {3, 28, 28}, torch::kUInt8);
  // .npy v1, uint8, C order
  std::string header = "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 28, 28), }";
  header.append(64 - (10 + header.size() + 1) % 64, ' ');
  header.push_back('\n');
  std::string npy = std::string("\x93NUMPY\x01\x00", 8);
  npy.push_back(char(header.size() & 0xff));
  npy.push_back(char(header.size() >> 8));
  npy += header;
  npy.append(reinterpret_cast<const char*>(imgs.data_ptr<uint8_t>()), imgs.numel());
  write_file_atomic(dir + "/s.npy", npy);
  EXPECT_TRUE(torch::equal(load_samples(dir + "/s.npy"), imgs));

  fs::create_directories(dir + "/png");
  for (int i = 0; i < 3; ++i)
    write_png(dir + "/png/" + std::to_string(i) + ".png", imgs[i].unsqueeze(2));
  EXPECT_TRUE(torch::equal(load_samples(dir + "/png"), imgs));
  // RGB PNGs keep 3 channels; evaluate converts them to luma
  fs::create_directories(dir + "/rgb");
  write_png(dir + "/rgb/a.png", imgs[0].unsqueeze(2).repeat({1, 1, 3}));
  torch::Tensor rgb = load_samples(dir + "/rgb");
  EXPECT_EQ(rgb.sizes(), (std::vector<int64_t>{1, 28, 28, 3}));
  EXPECT_LT(
      (images_to_float(rgb) - images_to_float(imgs.slice(0, 0, 1))).abs().max().item<double>(),
      1e-5);

  write_file_atomic(dir + "/bad.npy", std::string("garbage"));
  try {
    load_samples(dir + "/bad.npy");
    FAIL();
  } catch (const gm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.npy"), std::string::npos);
  }
  EXPECT_THROW(load_samples(dir + "/missing.npy"), gm::Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gm::metrics
