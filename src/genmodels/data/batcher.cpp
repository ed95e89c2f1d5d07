// Batcher: per-epoch permutations from a generator seeded with hash(seed, epoch), so any
// (epoch, position) state reproduces exactly the batches an uninterrupted run would see.
#include <ATen/CPUGeneratorImpl.h>

#include "genmodels/core/error.h"
#include "genmodels/data/dataset.h"

namespace gm::data {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

uint64_t epoch_seed(uint64_t seed, int64_t epoch) {
  return splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(epoch));
}

}  // namespace

Batcher::Batcher(const Dataset& data, int64_t batch_size, uint64_t seed, bool random_hflip)
    : data_(data), batch_size_(batch_size), seed_(seed), hflip_(random_hflip && data.is_image()) {
  if (!data_.x.defined() || data_.x.dim() < 1)
    throw Error("Batcher: dataset '" + data_.name + "' is empty (load it with load_dataset)");
  if (batch_size < 1 || batch_size > data_.size())
    throw Error("batch size " + std::to_string(batch_size) +
                " must be between 1 and the size of '" + data_.name + "' (" +
                std::to_string(data_.size()) + " examples); lower the batch size");
  if (!data_.y.defined()) data_.y = torch::zeros({data_.size()}, torch::kInt64);
}

int64_t Batcher::epoch() const { return epoch_; }
int64_t Batcher::position() const { return position_; }
int64_t Batcher::batches_per_epoch() const { return data_.size() / batch_size_; }

void Batcher::set_state(int64_t epoch, int64_t position) {
  if (epoch < 0 || position < 0 || position > data_.size())
    throw Error("Batcher: bad state (epoch " + std::to_string(epoch) + ", position " +
                std::to_string(position) + ") for a dataset of " + std::to_string(data_.size()) +
                " examples (checkpoint from a different dataset?)");
  epoch_ = epoch;
  position_ = position;
  normalize();
}

void Batcher::shard(int rank, int world) {
  if (world < 1 || rank < 0 || rank >= world)
    throw Error("Batcher: rank " + std::to_string(rank) + " outside a world of " +
                std::to_string(world));
  if (batch_size_ % world != 0)
    throw Error("train.batch_size = " + std::to_string(batch_size_) +
                " is the global batch and must be divisible by the number of ranks (" +
                std::to_string(world) + "); choose a multiple of " + std::to_string(world));
  rank_ = rank;
  world_ = world;
}

void Batcher::normalize() {
  if (position_ + batch_size_ > data_.size()) {
    ++epoch_;
    position_ = 0;
  }
}

void Batcher::prepare_epoch() {
  if (prepared_epoch_ == epoch_) return;
  at::Generator g = at::detail::createCPUGenerator(epoch_seed(seed_, epoch_));
  perm_ = torch::randperm(data_.size(), g, torch::kLong);
  if (hflip_) flip_ = torch::rand({data_.size()}, g) < 0.5;
  prepared_epoch_ = epoch_;
}

Batcher::Batch Batcher::peek_global() {
  const int rank = rank_, world = world_;
  const int64_t epoch = epoch_, position = position_;
  rank_ = 0;
  world_ = 1;
  Batch b = next();
  rank_ = rank;
  world_ = world;
  epoch_ = epoch;
  position_ = position;
  return b;
}

Batcher::Batch Batcher::next() {
  normalize();
  prepare_epoch();
  const int64_t local = batch_size_ / world_, begin = position_ + rank_ * local;
  torch::Tensor idx = perm_.slice(0, begin, begin + local);
  Batch b{data_.x.index_select(0, idx), data_.y.index_select(0, idx)};
  if (hflip_) {
    torch::Tensor m = flip_.slice(0, begin, begin + local).view({-1, 1, 1, 1});
    b.x = torch::where(m, b.x.flip({3}), b.x);
  }
  position_ += batch_size_;
  normalize();
  return b;
}

}  // namespace gm::data
