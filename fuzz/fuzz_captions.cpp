// Caption files of captions:DIR (a .txt beside each image): data/image_folder.h.
#include <filesystem>
#include <fstream>

#include "fuzz_util.h"
#include "genmodels/data/image_folder.h"
#include "genmodels/io/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    const std::string d = "/dev/shm/gm_fuzz_captions_" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    gm::io::write_png(d + "/a.png", torch::zeros({8, 8}, torch::kUInt8));
    return d;
  }();
  {
    std::ofstream(dir + "/a.txt", std::ios::binary)
        .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  gm::fuzz::expect_clean([&] {
    gm::data::DataOptions o;
    gm::data::load_caption_folder(dir, o, "captions:" + dir);
  });
  return 0;
}
