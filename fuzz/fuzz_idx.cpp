// IDX files (MNIST / Fashion-MNIST format), raw and gzip-compressed: data/idx.h.
#include "fuzz_util.h"
#include "genmodels/data/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The same bytes as a raw file and, when they start with the gzip magic, as a .gz one.
  const bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  const std::string path = gm::fuzz::write_input(data, size, gz ? "x-ubyte.gz" : "x-ubyte");
  gm::fuzz::expect_clean([&] { gm::data::read_idx(path); });
  return 0;
}
