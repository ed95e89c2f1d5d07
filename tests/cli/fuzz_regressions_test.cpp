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
#include "genmodels/train/checkpoint.h"

namespace fs = std::filesystem;

TEST(FuzzRegressions, EveryFoundInputIsRefusedCleanly) {
  const std::map<std::string, std::function<void(const std::string&)>> readers = {
      {"npy", [](const std::string& p) { gm::io::read_npy(p); }},
      {"idx", [](const std::string& p) { gm::data::read_idx(p); }},
      {"image", [](const std::string& p) { gm::io::read_image(p, 0); }},
      {"checkpoint", [](const std::string& p) { gm::train::read_checkpoint_meta(p); }},
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
