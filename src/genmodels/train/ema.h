// Exponential moving average of a module's parameters (Polyak averaging), with the
// warm-up decay min(decay, (1 + n) / (10 + n)) used by TensorFlow's ExponentialMovingAverage
// and most diffusion codebases, so early EMA weights are not dominated by the random init.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace gm::train {

class Ema {
 public:
  Ema(torch::nn::Module& module, double decay, bool warmup);
  /// shadow = d * shadow + (1 - d) * param after optimizer step number `num_updates` (1-based).
  void update(torch::nn::Module& module, int64_t num_updates);
  /// Copies the averaged weights into `module` (buffers are copied as they are).
  void copy_to(torch::nn::Module& module) const;
  double decay_at(int64_t num_updates) const;
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  double decay_;
  bool warmup_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> shadow_;
};

/// Swaps EMA weights into a module for the guard's lifetime, restoring the raw weights after.
class EmaScope {
 public:
  EmaScope(torch::nn::Module& module, const Ema& ema);
  ~EmaScope();
  EmaScope(const EmaScope&) = delete;
  EmaScope& operator=(const EmaScope&) = delete;

 private:
  torch::nn::Module& module_;
  std::vector<torch::Tensor> saved_;
};

}  // namespace gm::train
