// NumPy .npy files (translate --input, eval of sample files): io/npy.h.
#include "fuzz_util.h"
#include "genmodels/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = gm::fuzz::write_input(data, size, "x.npy");
  gm::fuzz::expect_clean([&] { gm::io::read_npy(path); });
  return 0;
}
