// safetensors weights (`genmodels import`, `train --init`): io/safetensors.h. A file the reader
// accepts must also survive a round trip through the writer with the same names, shapes, dtypes
// and bytes.
#include <cstring>

#include "fuzz_util.h"
#include "genmodels/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = gm::fuzz::write_input(data, size, "x.safetensors");
  gm::fuzz::expect_clean([&] {
    const gm::io::Safetensors st = gm::io::read_safetensors(path);
    const std::string again = path + ".again";
    gm::io::write_safetensors(again, st.tensors, st.metadata);
    const gm::io::Safetensors back = gm::io::read_safetensors(again);
    if (back.tensors.size() != st.tensors.size() || back.metadata != st.metadata) __builtin_trap();
    for (size_t i = 0; i < st.tensors.size(); ++i) {
      const torch::Tensor &a = st.tensors[i].tensor, &b = back.tensors[i].tensor;
      if (back.tensors[i].name != st.tensors[i].name || a.sizes() != b.sizes() ||
          a.scalar_type() != b.scalar_type() ||
          (a.numel() > 0 && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) != 0))
        __builtin_trap();
    }
  });
  return 0;
}
