// Datasets held in memory as tensors (Fashion-MNIST, MNIST-format folders, image folders, 2-D
// toys) and a seeded, resumable batcher.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gm::data {

struct Dataset {
  std::string name;  ///< the spec it was loaded from
  torch::Tensor x;   ///< float32; images in [-1,1] N x C x H x W, or toy points N x 2
  torch::Tensor y;   ///< int64 N class labels (all 0 for unlabeled/toys)
  std::vector<std::string> class_names;  ///< e.g. Fashion-MNIST's ten; empty for toys
  /// > 0: a two-domain dataset for translation (data/paired.h): x = cat(A, B) on the channel
  /// axis, domain A's `channels_a` channels first.
  int64_t channels_a = 0;
  /// "captions:DIR": one caption per example (the text of the image's .txt file); y is then the
  /// example's index and there are no classes.
  std::vector<std::string> captions;
  bool is_image() const { return x.dim() == 4; }
  int64_t size() const { return x.size(0); }
  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
};

struct DataOptions {
  std::string split = "train";  ///< "train" or "test"
  int64_t image_size = 0;       ///< 0 = native; else resize (bilinear) + center-crop to square
  int64_t channels = 0;         ///< 0 = native; 1 or 3 converts
  int64_t toy_points = 50000;   ///< points drawn for 2-D toys (test split uses seed+1)
  int64_t limit = 0;            ///< 0 = all; otherwise the first `limit` examples
  uint64_t seed = 0;            ///< for toys
};

/// Loads a dataset. spec: "fashion-mnist" (from /usr/share/datasets/fashion-mnist),
/// "fashion-mnist:K" (class K only), the paired translation specs of data/paired.h,
/// "mnist-idx:DIR", "folder:DIR" (PNG/JPEG/BMP; classes = sub-folder names sorted, or one class
/// named after DIR when the images sit directly in DIR; split is ignored; image_size defaults to
/// the shorter side of the first image), or a toy name (see toy2d_names()).
/// Throws gm::Error (one line) for unknown specs, missing datasets, empty folders, bad images.
Dataset load_dataset(const std::string& spec, const DataOptions& options = {});

/// Names for `genmodels list`: {"fashion-mnist", "mnist-idx:DIR", "folder:DIR", "moons", ...}.
std::vector<std::string> dataset_names();

/// Resizes float N x C x H x W images so the shorter side is `size` (bilinear, antialiased when
/// shrinking), then center-crops to size x size. Returns the input if already size x size.
torch::Tensor resize_center_crop(const torch::Tensor& images, int64_t size);

/// Converts float N x C x H x W images to `channels` (1: luminance, 3: gray repeated).
torch::Tensor convert_channels(const torch::Tensor& images, int64_t channels);

/// Seeded shuffling and batching. Epoch e uses the permutation (and flip draws) of a generator
/// seeded with hash(seed, e), so the state is fully (epoch, position) and a resumed run sees
/// exactly the same batches. position counts examples already taken in the current epoch.
class Batcher {
 public:
  /// Throws gm::Error unless 1 <= batch_size <= data.size(). random_hflip mirrors about half of
  /// the images left-right (ignored for non-image data such as 2-D toys).
  Batcher(const Dataset& data, int64_t batch_size, uint64_t seed, bool random_hflip = false);
  struct Batch {
    torch::Tensor x, y;
  };
  /// Next batch, always full size: when an epoch's remainder is smaller than batch_size the rest
  /// is dropped and the next epoch starts (drop_last).
  Batch next();
  /// Current epoch (0-based); advances as soon as the epoch's last full batch has been taken.
  int64_t epoch() const;
  /// Examples taken so far in the current epoch (a multiple of batch_size in normal use).
  int64_t position() const;
  /// Restores a state saved from epoch()/position().
  void set_state(int64_t epoch, int64_t position);
  int64_t batch_size() const { return batch_size_; }
  /// Data-parallel sharding: next() still walks the global batches of batch_size() (the same
  /// per-epoch order for every world size, and the same epoch()/position()), but returns only this
  /// rank's contiguous slice of batch_size() / world examples. Throws gm::Error unless world
  /// divides the batch size.
  void shard(int rank, int world);
  /// The global batch the next call of next() belongs to (all batch_size() examples, on every
  /// rank), without advancing.
  Batch peek_global();
  /// Examples next() returns (batch_size() / world).
  int64_t local_batch_size() const { return batch_size_ / world_; }
  /// Full batches per epoch.
  int64_t batches_per_epoch() const;

 private:
  void normalize();
  void prepare_epoch();
  Dataset data_;
  int64_t batch_size_;
  uint64_t seed_;
  bool hflip_;
  int64_t epoch_ = 0, position_ = 0;
  int64_t prepared_epoch_ = -1;
  int rank_ = 0, world_ = 1;
  torch::Tensor perm_, flip_;
};

}  // namespace gm::data
