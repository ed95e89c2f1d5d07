// Finished sample batches kept on disk, so that a long sampling job (1000-step DDPM of thousands
// of images takes hours on a CPU) that is interrupted resumes after its last finished batch
// instead of starting again. Every sample depends only on the seed and its index (noise.h), so a
// resumed job gives bit for bit the samples of an uninterrupted one.
//
// DIR/key.txt names the job (the sample command, the checkpoint step, the batch size): a
// directory made by another job is refused rather than mixed in. Each batch is one file
// DIR/batch-LO-HI.pt (rows LO..HI-1 before clamping, and the network evaluations it used),
// written atomically.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>

namespace gm::sampling {

class BatchCache {
 public:
  /// Opens (creating it if needed) `dir` for the job described by `key`. Throws gm::Error naming
  /// the directory when it holds another job's batches or cannot be written.
  BatchCache(std::string dir, const std::string& key);

  struct Batch {
    torch::Tensor x;  ///< the sampler's output rows (CPU)
    int64_t nfe = 0;  ///< network evaluations per sample that the batch used
  };

  /// The stored batch of rows [lo, hi), if finished. `row_shape` is one sample's shape; a file
  /// that does not hold such a batch is an error naming it.
  std::optional<Batch> load(int64_t lo, int64_t hi, const std::vector<int64_t>& row_shape) const;
  /// Stores the batch of rows [lo, hi) atomically.
  void save(int64_t lo, int64_t hi, const Batch& batch) const;

  const std::string& dir() const { return dir_; }

 private:
  std::string path(int64_t lo, int64_t hi) const;
  std::string dir_;
};

}  // namespace gm::sampling
