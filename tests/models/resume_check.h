// The resume check every learning test makes: a run trained straight through and the same run
// stopped part-way and resumed end with identical checkpoints.
#pragma once
#include <string>

#include "genmodels/models/run.h"
#include "test_util.h"

namespace gm::test {

/// Trains `straight`, then the same run into `split_out` stopped at step `stop_at` and resumed
/// from its checkpoint (data taken from the run, as `--resume` does); returns the number of
/// checkpoint tensors compared, each of which must be bit-identical
/// (expect_same_checkpoint_tensors).
inline int expect_bit_identical_resume(const gm::TrainArgs& straight, const std::string& split_out,
                                       int64_t stop_at) {
  gm::run_train(straight);
  gm::TrainArgs split = straight;
  split.out = split_out;
  split.stop_at = stop_at;
  gm::run_train(split);
  split.stop_at = 0;
  split.resume = true;
  split.data.reset();
  split.data_b.reset();
  gm::run_train(split);
  return expect_same_checkpoint_tensors(straight.out + "/checkpoint.pt",
                                        split_out + "/checkpoint.pt");
}

}  // namespace gm::test
