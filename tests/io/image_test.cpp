// Tests for gm::io image conversion, make_grid, the PNG writer (decoded back with stb_image) and
// the tEXt metadata round trip.
#include "genmodels/io/image.h"

#include <gtest/gtest.h>
#include <stb/stb_image.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "genmodels/core/error.h"
#include "test_util.h"

namespace {
namespace fs = std::filesystem;

struct TempDir : gm::test::TempDir {
  TempDir() : gm::test::TempDir("gm_io_image") {}
};

torch::Tensor random_pixels(std::vector<int64_t> shape, uint64_t seed) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  return torch::randint(0, 256, shape, g, torch::kLong).to(torch::kUInt8);
}

TEST(Image, ToUint8RoundsAndClamps) {
  torch::Tensor x = torch::tensor({-1.0f, 1.0f, 0.0f, 2.0f, -3.0f, 0.5f}).view({1, 1, 2, 3});
  torch::Tensor u = gm::io::to_uint8(x);
  ASSERT_EQ(u.sizes(), (std::vector<int64_t>{1, 2, 3, 1}));
  ASSERT_EQ(u.scalar_type(), torch::kUInt8);
  std::vector<int> expect = {0, 255, 128, 255, 0, 191};  // 127.5 rounds to 128, 191.25 -> 191
  for (int i = 0; i < 6; ++i) EXPECT_EQ(u.view({-1})[i].item<int>(), expect[i]) << i;
}

TEST(Image, Uint8RoundTrip) {
  torch::Tensor px = random_pixels({2, 5, 7, 3}, 1);
  torch::Tensor f = gm::io::from_uint8(px);
  ASSERT_EQ(f.sizes(), (std::vector<int64_t>{2, 3, 5, 7}));
  EXPECT_GE(f.min().item<float>(), -1.0f);
  EXPECT_LE(f.max().item<float>(), 1.0f);
  EXPECT_TRUE(torch::equal(gm::io::to_uint8(f), px));
  torch::Tensor gray = random_pixels({3, 4, 4}, 2);
  torch::Tensor g = gm::io::from_uint8(gray);
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{3, 1, 4, 4}));
  EXPECT_TRUE(torch::equal(gm::io::to_uint8(g).squeeze(3), gray));
}

TEST(Image, ToUint8RejectsBadShape) {
  EXPECT_NE(gm::test::error_of([] {
              gm::io::to_uint8(torch::zeros({2, 2, 4, 4}));
            }).find("C = 1 or 3"),
            std::string::npos);
}

TEST(Image, MakeGridLayout) {
  // 3 images of 2x2, values -1 (0), 0 (128), 1 (255); 2 per row, padding 1.
  torch::Tensor imgs = torch::stack(
      {torch::full({1, 2, 2}, -1.0f), torch::full({1, 2, 2}, 0.0f), torch::full({1, 2, 2}, 1.0f)});
  torch::Tensor g = gm::io::make_grid(imgs, 2, 1);
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{2 * 3 + 1, 2 * 3 + 1, 1}));
  ASSERT_EQ(g.scalar_type(), torch::kUInt8);
  EXPECT_EQ(g[1][1][0].item<int>(), 0);    // image 0 top-left
  EXPECT_EQ(g[1][4][0].item<int>(), 128);  // image 1
  EXPECT_EQ(g[5][2][0].item<int>(), 255);  // image 2, second row
  EXPECT_EQ(g[5][5][0].item<int>(), 0);    // empty slot stays black
  EXPECT_EQ(g[0][0][0].item<int>(), 0);    // padding
  EXPECT_EQ(g[3][4][0].item<int>(), 0);    // padding between rows
  // One row of 4 RGB images without padding.
  torch::Tensor rgb = torch::rand({4, 3, 5, 6}) * 2 - 1;
  torch::Tensor g2 = gm::io::make_grid(rgb, 8, 0);
  ASSERT_EQ(g2.sizes(), (std::vector<int64_t>{5, 24, 3}));
  EXPECT_TRUE(torch::equal(g2.slice(1, 6, 12), gm::io::to_uint8(rgb)[1]));
}

void expect_png_roundtrip(const torch::Tensor& img, const std::string& path) {
  gm::io::write_png(path, img);
  int w = 0, h = 0, c = 0;
  unsigned char* px = stbi_load(path.c_str(), &w, &h, &c, 0);
  ASSERT_NE(px, nullptr) << stbi_failure_reason();
  const int64_t want_c = img.dim() == 2 ? 1 : img.size(2);
  EXPECT_EQ(h, img.size(0));
  EXPECT_EQ(w, img.size(1));
  EXPECT_EQ(c, want_c);
  torch::Tensor back = torch::from_blob(px, {h, w, c}, torch::kUInt8).clone();
  stbi_image_free(px);
  EXPECT_TRUE(torch::equal(back, img.dim() == 2 ? img.unsqueeze(2) : img));
  EXPECT_TRUE(torch::equal(gm::io::read_image(path), back));
}

TEST(Png, GrayscaleRoundTripExact) {
  TempDir dir;
  expect_png_roundtrip(random_pixels({17, 23}, 3), dir.file("gray.png"));
  expect_png_roundtrip(random_pixels({9, 4, 1}, 4), dir.file("gray1.png"));
}

TEST(Png, RgbAndRgbaRoundTripExact) {
  TempDir dir;
  expect_png_roundtrip(random_pixels({31, 12, 3}, 5), dir.file("rgb.png"));
  expect_png_roundtrip(random_pixels({8, 8, 4}, 6), dir.file("rgba.png"));
}

TEST(Png, TextChunksRoundTrip) {
  TempDir dir;
  const std::string path = dir.file("meta.png");
  std::map<std::string, std::string> text = {
      {"model", "ddpm"},   {"sampler", "ddim"}, {"steps", "50"},         {"seed", "1234"},
      {"guidance", "2.5"}, {"empty", ""},       {"spaces", "a b = c; d"}};
  gm::io::write_png(path, random_pixels({6, 5, 3}, 7), text);
  EXPECT_EQ(gm::io::read_png_text(path), text);
  int w, h, c;
  unsigned char* px = stbi_load(path.c_str(), &w, &h, &c, 0);
  ASSERT_NE(px, nullptr) << stbi_failure_reason();
  stbi_image_free(px);
  gm::io::write_png(dir.file("plain.png"), random_pixels({2, 2}, 8));
  EXPECT_TRUE(gm::io::read_png_text(dir.file("plain.png")).empty());
}

TEST(Png, ReadTextOfNonPngNamesFile) {
  TempDir dir;
  const std::string path = dir.file("not.png");
  std::ofstream(path) << "hello";
  const std::string msg = gm::test::error_of([&] { gm::io::read_png_text(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a PNG"), std::string::npos) << msg;
}

TEST(Png, WriteRejectsBadInput) {
  TempDir dir;
  EXPECT_THROW(gm::io::write_png(dir.file("f.png"), torch::zeros({4, 4})), gm::Error);
  EXPECT_THROW(gm::io::write_png(dir.file("c.png"), torch::zeros({4, 4, 2}, torch::kUInt8)),
               gm::Error);
  EXPECT_THROW(
      gm::io::write_png(dir.file("k.png"), torch::zeros({4, 4}, torch::kUInt8), {{"", "x"}}),
      gm::Error);
  EXPECT_FALSE(fs::exists(dir.file("k.png")));
}

TEST(ReadImage, ChannelConversion) {
  TempDir dir;
  const std::string path = dir.file("rgb.png");
  torch::Tensor rgb = random_pixels({5, 6, 3}, 9);
  gm::io::write_png(path, rgb);
  EXPECT_EQ(gm::io::read_image(path, 1).sizes(), (std::vector<int64_t>{5, 6, 1}));
  EXPECT_EQ(gm::io::read_image(path, 3).sizes(), (std::vector<int64_t>{5, 6, 3}));
  gm::io::write_png(dir.file("g.png"), random_pixels({5, 6}, 10));
  torch::Tensor g3 = gm::io::read_image(dir.file("g.png"), 3);
  ASSERT_EQ(g3.sizes(), (std::vector<int64_t>{5, 6, 3}));
  EXPECT_TRUE(torch::equal(g3.select(2, 0), g3.select(2, 2)));
}

TEST(ReadImage, ErrorsNameTheFile) {
  TempDir dir;
  const std::string missing = dir.file("missing.png");
  std::string msg = gm::test::error_of([&] { gm::io::read_image(missing); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;

  const std::string empty = dir.file("empty.png");
  std::ofstream(empty).close();
  msg = gm::test::error_of([&] { gm::io::read_image(empty); });
  EXPECT_NE(msg.find(empty), std::string::npos) << msg;
  EXPECT_NE(msg.find("0 bytes"), std::string::npos) << msg;

  const std::string corrupt = dir.file("corrupt.jpg");
  std::ofstream(corrupt) << "definitely not an image";
  msg = gm::test::error_of([&] { gm::io::read_image(corrupt); });
  EXPECT_NE(msg.find(corrupt), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

}  // namespace
