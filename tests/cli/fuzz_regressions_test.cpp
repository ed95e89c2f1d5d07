// Every input a fuzzer (fuzz/, scripts/fuzz) found crashing a reader, kept in fuzz/regressions/
// READER/: each must now give a one-line gm::Error (or, where the bytes are valid, a result),
// never a crash, an abort, a sanitizer report or another exception.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>

#include "genmodels/core/error.h"
#include "genmodels/data/idx.h"
#include "genmodels/io/image.h"
#include "genmodels/io/npy.h"
#include "genmodels/io/safetensors.h"
#include "genmodels/train/checkpoint.h"

namespace fs = std::filesystem;

TEST(FuzzRegressions, EveryFoundInputIsRefusedCleanly) {
  const std::map<std::string, std::function<void(const std::string&)>> readers = {
      {"npy", [](const std::string& p) { gm::io::read_npy(p); }},
      {"idx", [](const std::string& p) { gm::data::read_idx(p); }},
      {"image", [](const std::string& p) { gm::io::read_image(p, 0); }},
      {"checkpoint", [](const std::string& p) { gm::train::read_checkpoint_meta(p); }},
      {"safetensors", [](const std::string& p) { gm::io::read_safetensors(p); }},
  };
  int files = 0, refused = 0;
  for (const auto& [name, read] : readers)
    for (const auto& e :
         fs::directory_iterator(std::string(GM_SOURCE_DIR) + "/fuzz/regressions/" + name)) {
      ++files;
      try {
        read(e.path().string());
      } catch (const gm::Error& err) {
        ++refused;
        EXPECT_EQ(std::string(err.what()).find('\n'), std::string::npos) << err.what();
      } catch (const std::exception& other) {
        ADD_FAILURE() << e.path() << ": " << other.what();
      }
    }
  EXPECT_GE(files, 10);
  EXPECT_EQ(refused, files - 1);  // all but the empty array, which is a valid .npy
  EXPECT_EQ(gm::io::read_npy(std::string(GM_SOURCE_DIR) + "/fuzz/regressions/npy/empty-array.npy")
                .numel(),
            0);
}

// JPEG goes through libjpeg-turbo (the fuzzed stb decoder is only used for PNG and BMP).
TEST(FuzzRegressions, JpegDecodesThroughLibjpeg) {
  const std::string dir = std::string(GM_SOURCE_DIR) + "/fuzz/corpus/image/";
  const torch::Tensor rgb = gm::io::read_image(dir + "rgb.jpg", 0);
  EXPECT_EQ(rgb.sizes(), (std::vector<int64_t>{3, 5, 3}));
  // The seed's pixels are 0, 5, ..., 220 in order (mean 110), through JPEG's loss.
  EXPECT_NEAR(rgb.to(torch::kFloat32).mean().item<float>(), 110.0f, 12.0f);
  // stb_image_write stores even gray pictures as three-component JPEGs.
  EXPECT_EQ(gm::io::read_image(dir + "gray.jpg", 0).sizes(), (std::vector<int64_t>{4, 4, 3}));
  EXPECT_EQ(gm::io::read_image(dir + "gray.jpg", 1).sizes(), (std::vector<int64_t>{4, 4, 1}));
  EXPECT_EQ(gm::io::read_image(dir + "rgb.jpg", 1).sizes(), (std::vector<int64_t>{3, 5, 1}));
  EXPECT_EQ(gm::io::read_image(dir + "rgb.jpg", 4).sizes(), (std::vector<int64_t>{3, 5, 4}));
}
