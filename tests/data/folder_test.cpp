// Tests for "folder:DIR" datasets: class sub-folders, resizing, and errors naming bad files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "genmodels/core/error.h"
#include "genmodels/data/dataset.h"
#include "genmodels/io/image.h"
#include "test_util.h"

namespace {
namespace fs = std::filesystem;

struct TempDir : gm::test::TempDir {
  TempDir() : gm::test::TempDir("gm_data_folder") {}
};

void write_solid(const std::string& path, int64_t h, int64_t w, int64_t c, int value) {
  fs::create_directories(fs::path(path).parent_path());
  gm::io::write_png(path, torch::full({h, w, c}, value, torch::kUInt8));
}

TEST(Folder, ClassesFromSubfoldersAndResize) {
  TempDir dir;
  // "cats" sorts before "dogs": label 0 = cats (black), 1 = dogs (white). Different sizes.
  write_solid(dir.file("dogs/a.png"), 20, 30, 3, 255);
  write_solid(dir.file("dogs/b.png"), 16, 16, 3, 255);
  write_solid(dir.file("cats/x.png"), 12, 10, 3, 0);
  write_solid(dir.file("cats/y.PNG"), 40, 40, 3, 0);
  write_solid(dir.file("cats/z.png"), 8, 8, 1, 0);  // grayscale mixed in
  std::ofstream(dir.file("cats/readme.txt")) << "not an image";
  gm::data::DataOptions opt;
  opt.image_size = 16;
  gm::data::Dataset d = gm::data::load_dataset("folder:" + dir.path.string(), opt);
  ASSERT_EQ(d.x.sizes(), (std::vector<int64_t>{5, 3, 16, 16}));
  EXPECT_EQ(d.class_names, (std::vector<std::string>{"cats", "dogs"}));
  EXPECT_TRUE(torch::equal(d.y, torch::tensor({0, 0, 0, 1, 1}, torch::kInt64)));
  EXPECT_TRUE(torch::allclose(d.x.slice(0, 0, 3), torch::full({3, 3, 16, 16}, -1.0f)));
  EXPECT_TRUE(torch::allclose(d.x.slice(0, 3, 5), torch::full({2, 3, 16, 16}, 1.0f)));

  // Defaults: size = shorter side of the first image (cats/x.png: 12x10 -> 10).
  opt.image_size = 0;
  opt.channels = 1;
  opt.limit = 4;
  gm::data::Dataset g = gm::data::load_dataset("folder:" + dir.path.string(), opt);
  EXPECT_EQ(g.x.sizes(), (std::vector<int64_t>{4, 1, 10, 10}));
  EXPECT_EQ(g.name, "folder:" + dir.path.string());
}

TEST(Folder, LooseImagesAreOneClass) {
  TempDir dir;
  for (int i = 0; i < 3; ++i)
    write_solid(dir.file("img" + std::to_string(i) + ".png"), 6, 6, 1, 10);
  gm::data::Dataset d = gm::data::load_dataset("folder:" + dir.path.string());
  EXPECT_EQ(d.x.sizes(), (std::vector<int64_t>{3, 1, 6, 6}));
  EXPECT_EQ(d.num_classes(), 1);
  EXPECT_EQ(d.y.sum().item<int64_t>(), 0);
}

TEST(Folder, CenterCropKeepsMiddle) {
  TempDir dir;
  // 4 x 12 image: left third black, middle white, right third black -> crop 4x4 is all white.
  torch::Tensor img = torch::zeros({4, 12, 1}, torch::kUInt8);
  img.slice(1, 4, 8).fill_(255);
  gm::io::write_png(dir.file("wide.png"), img);
  gm::data::Dataset d = gm::data::load_dataset("folder:" + dir.path.string());
  ASSERT_EQ(d.x.sizes(), (std::vector<int64_t>{1, 1, 4, 4}));
  EXPECT_TRUE(torch::allclose(d.x, torch::ones({1, 1, 4, 4})));
}

TEST(Folder, Errors) {
  TempDir dir;
  fs::create_directories(dir.file("empty/sub"));
  std::string msg =
      gm::test::error_of([&] { gm::data::load_dataset("folder:" + dir.file("empty")); });
  EXPECT_NE(msg.find(dir.file("empty")), std::string::npos) << msg;
  EXPECT_NE(msg.find("no PNG/JPEG"), std::string::npos) << msg;

  msg = gm::test::error_of([&] { gm::data::load_dataset("folder:" + dir.file("absent")); });
  EXPECT_NE(msg.find(dir.file("absent")), std::string::npos) << msg;

  write_solid(dir.file("zero/a/ok.png"), 4, 4, 3, 1);
  std::ofstream(dir.file("zero/a/zero.png")).close();
  msg = gm::test::error_of([&] { gm::data::load_dataset("folder:" + dir.file("zero")); });
  EXPECT_NE(msg.find(dir.file("zero/a/zero.png")), std::string::npos) << msg;
  EXPECT_NE(msg.find("0 bytes"), std::string::npos) << msg;

  write_solid(dir.file("bad/a/ok.png"), 4, 4, 3, 1);
  fs::create_directories(dir.file("bad/b"));
  std::ofstream(dir.file("bad/b/broken.jpg")) << "JFIF? no, just garbage bytes";
  msg = gm::test::error_of([&] { gm::data::load_dataset("folder:" + dir.file("bad")); });
  EXPECT_NE(msg.find(dir.file("bad/b/broken.jpg")), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;

  // A PNG cut short is corrupt too.
  write_solid(dir.file("cut/a.png"), 32, 32, 3, 7);
  fs::resize_file(dir.file("cut/a.png"), 40);
  msg = gm::test::error_of([&] { gm::data::load_dataset("folder:" + dir.file("cut")); });
  EXPECT_NE(msg.find(dir.file("cut/a.png")), std::string::npos) << msg;
}

}  // namespace

TEST(Folder, CaptionsBesideImagesAndTheirErrors) {
  TempDir dir;
  write_solid(dir.file("a.png"), 6, 6, 1, 10);
  write_solid(dir.file("b.png"), 6, 6, 1, 200);
  std::ofstream(dir.file("a.txt")) << "A dark  square\n";
  std::ofstream(dir.file("b.txt")) << "une image claire \xc3\xa9t\xc3\xa9";  // UTF-8
  const std::string spec = "captions:" + dir.path.string();
  gm::data::Dataset d = gm::data::load_dataset(spec);
  ASSERT_EQ(d.captions.size(), 2u);
  EXPECT_EQ(d.captions[0], "A dark  square\n");
  EXPECT_TRUE(torch::equal(d.y, torch::tensor({0, 1}, torch::kInt64)));  // index, no classes
  EXPECT_EQ(d.num_classes(), 0);
  auto fails_naming = [&](const std::string& what) {
    try {
      gm::data::load_dataset(spec);
      ADD_FAILURE() << "expected an error naming " << what;
    } catch (const gm::Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  };
  std::ofstream(dir.file("b.txt")) << "bad \xc3\x28 bytes";  // invalid continuation
  fails_naming("b.txt is not UTF-8");
  std::ofstream(dir.file("b.txt")) << "\xe0\x80\xaf";  // overlong '/'
  fails_naming("b.txt is not UTF-8");
  std::ofstream(dir.file("b.txt")) << " \n\t";
  fails_naming("b.txt is empty");
  fs::remove(dir.file("b.txt"));
  fails_naming("has no caption file");
}
