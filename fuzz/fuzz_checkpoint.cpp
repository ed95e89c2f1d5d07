// Checkpoint files (sample, eval, --resume): train/checkpoint.h.
#include "fuzz_util.h"
#include "genmodels/train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = gm::fuzz::write_input(data, size, "checkpoint.pt");
  gm::fuzz::expect_clean([&] { gm::train::read_checkpoint_meta(path); });
  gm::fuzz::expect_clean([&] {
    torch::nn::Linear net(2, 2);
    gm::train::load_checkpoint_weights(path, *net, {});
  });
  return 0;
}
