// Domain evaluator: a small CNN classifier for Fashion-MNIST whose penultimate (128-d, post-ReLU)
// activations are the feature space of every image metric (FID, KID, precision/recall), and whose
// softmax drives the Inception-Score analogue and the class metrics. It plays the role Inception-v3
// plays for FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a
// Local Nash Equilibrium") on natural images. Trained by genmodels itself, deterministically from a
// seed, and cached in the user's cache directory.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "genmodels/core/json.h"

namespace gm::metrics {

/// Training settings of the evaluator.
struct EvaluatorOptions {
  int64_t epochs = 3;        ///< passes over the training split
  int64_t batch_size = 128;  ///< minibatch size
  double lr = 1e-3;          ///< peak Adam learning rate (cosine decay to 0)
  uint64_t seed = 0;         ///< seeds weight init, dropout and batch order
  int64_t limit = 0;  ///< train on the first `limit` images only (0 = all 60000; for tests), and
                      ///< then report test accuracy on the first 1000 test images only
};

/// Default cache dir: $GENMODELS_CACHE or $XDG_CACHE_HOME/genmodels or ~/.cache/genmodels.
std::string cache_dir();

/// File name of the cached evaluator inside a cache dir.
inline const char* kEvaluatorFile = "fmnist_evaluator.pt";

struct EvaluatorNetImpl;  // conv32-conv32-pool-conv64-conv64-pool-fc128-fc10 (evaluator.cpp)

class Evaluator {
 public:
  /// Trains on the Fashion-MNIST train split (cross-entropy, Adam, cosine LR).
  static Evaluator train(const EvaluatorOptions& options, bool verbose);
  /// Loads cache_dir/fmnist_evaluator.pt; if it is missing or corrupt (unreadable, version or
  /// checksum mismatch) trains with `options` and saves it atomically.
  static Evaluator load_or_train(const std::string& cache_dir, bool verbose,
                                 const EvaluatorOptions& options = {});
  /// Loads a saved evaluator; throws gm::Error naming the file when it is unreadable or corrupt.
  static Evaluator load(const std::string& path);
  /// Writes weights, format version, fingerprint and training info atomically.
  void save(const std::string& path) const;

  /// Penultimate features (eval mode) of float [-1,1] N x 1 x 28 x 28 images: N x 128 float64.
  torch::Tensor features(const torch::Tensor& images) const;
  /// Class logits (eval mode): N x 10 float32.
  torch::Tensor logits(const torch::Tensor& images) const;
  /// Features and logits in one pass.
  std::pair<torch::Tensor, torch::Tensor> features_and_logits(const torch::Tensor& images) const;
  /// Share of `images` whose argmax class equals `labels` (int64 N).
  double accuracy(const torch::Tensor& images, const torch::Tensor& labels) const;
  /// Hex FNV-1a hash of every parameter and buffer; reference statistics are keyed by it.
  std::string fingerprint() const;
  /// Feature dimension (128).
  int64_t feature_dim() const;
  /// Training settings, test accuracy and seconds as stored with the weights.
  const Json& info() const { return info_; }

 private:
  explicit Evaluator(std::shared_ptr<EvaluatorNetImpl> net, Json info);
  std::shared_ptr<EvaluatorNetImpl> net_;
  Json info_;
};

/// Fashion-MNIST `split` ("train"/"test") via gm::data::load_dataset: float [-1,1] N x 1 x 28 x 28,
/// int64 N.
std::pair<torch::Tensor, torch::Tensor> load_fashion_mnist(const std::string& split);

}  // namespace gm::metrics
