// PNG / JPEG / BMP images (image folders, translate inputs) and PNG text chunks: io/image.h.
#include "fuzz_util.h"
#include "genmodels/io/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = gm::fuzz::write_input(data, size, "x.img");
  // One decode per input (a decode may be large); the channel request varies with the size.
  const int channels[] = {0, 1, 3, 4};
  gm::fuzz::expect_clean([&] { gm::io::read_image(path, channels[size % 4]); });
  gm::fuzz::expect_clean([&] { gm::io::read_png_text(path); });
  return 0;
}
