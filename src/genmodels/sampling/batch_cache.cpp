#include "genmodels/sampling/batch_cache.h"

#include <filesystem>
#include <sstream>
#include <utility>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"

namespace gm::sampling {

namespace fs = std::filesystem;

BatchCache::BatchCache(std::string dir, const std::string& key) : dir_(std::move(dir)) {
  if (dir_.empty()) throw Error("--keep-batches: give a directory");
  check_output_dir(dir_, "--keep-batches");
  make_dirs(dir_);
  const std::string key_path = dir_ + "/key.txt";
  if (!fs::exists(key_path)) {
    if (!list_directory(dir_).empty())
      throw Error("--keep-batches " + dir_ +
                  " is not empty and has no key.txt (it was not made by --keep-batches): give a "
                  "new directory");
    write_file_atomic(key_path, key + "\n");
    return;
  }
  std::string stored = read_file(key_path);
  if (!stored.empty() && stored.back() == '\n') stored.pop_back();
  if (stored != key) {
    std::string first = stored.substr(0, stored.find('\n'));
    throw Error("--keep-batches " + dir_ + " holds the batches of another job ('" + first +
                "', see its key.txt): give another directory, or delete it to start again");
  }
}

std::string BatchCache::path(int64_t lo, int64_t hi) const {
  return dir_ + "/batch-" + std::to_string(lo) + "-" + std::to_string(hi) + ".pt";
}

std::optional<BatchCache::Batch> BatchCache::load(int64_t lo, int64_t hi,
                                                  const std::vector<int64_t>& row_shape) const {
  const std::string p = path(lo, hi);
  if (!fs::exists(p)) return std::nullopt;
  std::vector<torch::Tensor> parts;
  try {
    std::istringstream in(read_file(p));
    torch::load(parts, in);
  } catch (const c10::Error&) {
    parts.clear();
  }
  std::vector<int64_t> want = {hi - lo};
  want.insert(want.end(), row_shape.begin(), row_shape.end());
  if (parts.size() != 2 || parts[0].sizes().vec() != want || parts[1].numel() != 1)
    throw Error(p + " is not a finished sample batch of rows " + std::to_string(lo) + ".." +
                std::to_string(hi - 1) + ": delete it (it is sampled again)");
  return Batch{parts[0], parts[1].item<int64_t>()};
}

void BatchCache::save(int64_t lo, int64_t hi, const Batch& batch) const {
  const std::vector<torch::Tensor> parts = {batch.x.cpu().contiguous(),
                                            torch::tensor({batch.nfe}, torch::kInt64)};
  write_file_atomic(path(lo, hi), [&](std::ostream& out) { torch::save(parts, out); });
}

}  // namespace gm::sampling
