// Tests for the IDX reader (raw and gzipped, corrupt files) and the real Fashion-MNIST dataset.
#include "genmodels/data/idx.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "genmodels/core/error.h"
#include "genmodels/data/dataset.h"
#include "test_util.h"

namespace {
namespace fs = std::filesystem;

struct TempDir : gm::test::TempDir {
  TempDir() : gm::test::TempDir("gm_data_idx") {}
};

// IDX bytes: magic 00 00 08 ndims, big-endian dims, then `payload` (may be shorter than dims say).
std::string idx_bytes(const std::vector<uint32_t>& dims, const std::string& payload,
                      unsigned char dtype = 0x08) {
  std::string s = {0, 0, static_cast<char>(dtype), static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8)
      s.push_back(static_cast<char>((d >> shift) & 0xff));
  return s + payload;
}

std::string counting(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7) % 256);
  return s;
}

void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), int(bytes.size()));
  gzclose(f);
}

void expect_counting(const torch::Tensor& t, std::vector<int64_t> shape) {
  ASSERT_EQ(t.scalar_type(), torch::kUInt8);
  ASSERT_EQ(t.sizes(), shape);
  torch::Tensor flat = t.reshape({-1});
  for (int64_t i = 0; i < flat.numel(); i += 13)
    EXPECT_EQ(flat[i].item<int>(), int((i * 7) % 256)) << i;
}

TEST(Idx, ReadsRawAndGzip) {
  TempDir dir;
  const std::string bytes = idx_bytes({5, 4, 3}, counting(60));
  write_raw(dir.file("img-idx3-ubyte"), bytes);
  write_gz(dir.file("img-idx3-ubyte.gz"), bytes);
  expect_counting(gm::data::read_idx(dir.file("img-idx3-ubyte")), {5, 4, 3});
  expect_counting(gm::data::read_idx(dir.file("img-idx3-ubyte.gz")), {5, 4, 3});
  write_gz(dir.file("labels.gz"), idx_bytes({6}, std::string("\x00\x01\x09\x03\x04\x05", 6)));
  torch::Tensor labels = gm::data::read_idx(dir.file("labels.gz"));
  EXPECT_TRUE(torch::equal(labels, torch::tensor({0, 1, 9, 3, 4, 5}, torch::kUInt8)));
}

TEST(Idx, BadMagic) {
  TempDir dir;
  const std::string path = dir.file("bad");
  write_raw(path, std::string("\x12\x34\x56\x78", 4) + counting(20));
  const std::string msg = gm::test::error_of([&] { gm::data::read_idx(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("0x12345678"), std::string::npos) << msg;
  EXPECT_NE(msg.find("0x00000801"), std::string::npos) << msg;
  EXPECT_NE(msg.find("0x00000803"), std::string::npos) << msg;
}

TEST(Idx, UnsupportedDtype) {
  TempDir dir;
  const std::string path = dir.file("floats");
  write_raw(path, idx_bytes({2}, std::string(8, '\0'), 0x0D));
  const std::string msg = gm::test::error_of([&] { gm::data::read_idx(path); });
  EXPECT_NE(msg.find("dtype"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST(Idx, Truncated) {
  TempDir dir;
  // Header says 10 images of 2x2, file holds 3.
  const std::string bytes = idx_bytes({10, 2, 2}, counting(12));
  write_raw(dir.file("t"), bytes);
  write_gz(dir.file("t.gz"), bytes);
  for (const std::string& path : {dir.file("t"), dir.file("t.gz")}) {
    const std::string msg = gm::test::error_of([&] { gm::data::read_idx(path); });
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected 40"), std::string::npos) << msg;
    EXPECT_NE(msg.find("got 12"), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }
  // A gzip stream cut in half is also reported, not silently accepted.
  write_gz(dir.file("big.gz"), idx_bytes({200, 10, 10}, counting(20000)));
  fs::resize_file(dir.file("big.gz"), fs::file_size(dir.file("big.gz")) / 2);
  EXPECT_THROW(gm::data::read_idx(dir.file("big.gz")), gm::Error);
}

TEST(Idx, MissingFile) {
  TempDir dir;
  const std::string path = dir.file("nope-idx3-ubyte");
  std::string msg = gm::test::error_of([&] { gm::data::read_idx(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  msg = gm::test::error_of(
      [] { gm::data::read_idx("/usr/share/datasets/fashion-mnist/nope-idx3-ubyte.gz"); });
  EXPECT_NE(msg.find("apt-get install dataset-fashion-mnist"), std::string::npos) << msg;
}

TEST(Idx, MnistSplitAndCountMismatch) {
  TempDir dir;
  write_gz(dir.file("train-images-idx3-ubyte.gz"), idx_bytes({4, 28, 28}, counting(4 * 784)));
  write_raw(dir.file("train-labels-idx1-ubyte"),
            idx_bytes({4}, std::string("\x01\x02\x03\x00", 4)));
  auto [images, labels] = gm::data::load_mnist_split(dir.path.string(), "train");
  expect_counting(images, {4, 28, 28});
  EXPECT_EQ(labels.scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(labels, torch::tensor({1, 2, 3, 0}, torch::kInt64)));

  gm::data::Dataset d = gm::data::load_dataset("mnist-idx:" + dir.path.string());
  EXPECT_EQ(d.x.sizes(), (std::vector<int64_t>{4, 1, 28, 28}));
  EXPECT_EQ(d.num_classes(), 4);

  write_raw(dir.file("t10k-images-idx3-ubyte"), idx_bytes({3, 28, 28}, counting(3 * 784)));
  write_raw(dir.file("t10k-labels-idx1-ubyte"), idx_bytes({5}, counting(5)));
  const std::string msg =
      gm::test::error_of([&] { gm::data::load_mnist_split(dir.path.string(), "test"); });
  EXPECT_NE(msg.find("t10k-images-idx3-ubyte"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t10k-labels-idx1-ubyte"), std::string::npos) << msg;
  EXPECT_NE(msg.find("3 images"), std::string::npos) << msg;
  EXPECT_NE(msg.find("5 labels"), std::string::npos) << msg;

  EXPECT_THROW(gm::data::load_mnist_split(dir.path.string(), "valid"), gm::Error);
  EXPECT_THROW(gm::data::load_mnist_split(dir.file("absent"), "train"), gm::Error);
}

TEST(FashionMnist, LoadsRealDataset) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  gm::data::Dataset train = gm::data::load_dataset("fashion-mnist");
  ASSERT_TRUE(train.is_image());
  EXPECT_EQ(train.x.sizes(), (std::vector<int64_t>{60000, 1, 28, 28}));
  EXPECT_EQ(train.x.scalar_type(), torch::kFloat32);
  EXPECT_GE(train.x.min().item<float>(), -1.0f);
  EXPECT_LE(train.x.max().item<float>(), 1.0f);
  EXPECT_EQ(train.x.min().item<float>(), -1.0f);
  EXPECT_EQ(train.x.max().item<float>(), 1.0f);
  ASSERT_EQ(train.y.scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(torch::bincount(train.y), torch::full({10}, 6000, torch::kLong)));
  ASSERT_EQ(train.num_classes(), 10);
  EXPECT_EQ(train.class_names[0], "T-shirt/top");
  EXPECT_EQ(train.class_names[9], "Ankle boot");

  gm::data::DataOptions opt;
  opt.split = "test";
  gm::data::Dataset test = gm::data::load_dataset("fashion-mnist", opt);
  EXPECT_EQ(test.x.sizes(), (std::vector<int64_t>{10000, 1, 28, 28}));
  EXPECT_EQ(test.y.size(0), 10000);
  EXPECT_GE(test.y.min().item<int64_t>(), 0);
  EXPECT_LE(test.y.max().item<int64_t>(), 9);

  opt.limit = 100;
  opt.image_size = 32;
  opt.channels = 3;
  gm::data::Dataset small = gm::data::load_dataset("fashion-mnist", opt);
  EXPECT_EQ(small.x.sizes(), (std::vector<int64_t>{100, 3, 32, 32}));
  EXPECT_TRUE(torch::equal(small.y, test.y.slice(0, 0, 100)));
  EXPECT_GE(small.x.min().item<float>(), -1.0f);
  EXPECT_LE(small.x.max().item<float>(), 1.0f);
}

TEST(Dataset, UnknownSpecListsValidOnes) {
  const std::string msg = gm::test::error_of([] { gm::data::load_dataset("cifar10"); });
  EXPECT_NE(msg.find("cifar10"), std::string::npos) << msg;
  EXPECT_NE(msg.find("fashion-mnist"), std::string::npos) << msg;
  EXPECT_NE(msg.find("folder:DIR"), std::string::npos) << msg;
  EXPECT_NE(msg.find("moons"), std::string::npos) << msg;
  gm::data::DataOptions opt;
  opt.split = "val";
  EXPECT_THROW(gm::data::load_dataset("moons", opt), gm::Error);
  EXPECT_EQ(gm::data::dataset_names().front(), "fashion-mnist");
}

}  // namespace
