// Generative classifiers: one density p(x | y = k) per class plus class priors, classification by
// Bayes' rule (Murphy, "Machine Learning: A Probabilistic Perspective", 2012, sec. 4.2 and 3.5;
// Hastie, Tibshirani & Friedman, "The Elements of Statistical Learning", 2009, sec. 4.3 and 6.6.3).
// Unlike discriminative libraries these are also density models: log p(x | y), log p(x) and
// sampling from p(x | y) are first-class.
//
// Features are N x D tensors of any floating type; every fit and every probability is computed in
// float64. Parameters are buffers of a torch::nn::Module, so a fitted model saves and loads like
// any network (genmodels checkpoints).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gm::classic {

/// Class priors: fitted from class frequencies (empty), uniform, or given (one per class, > 0,
/// summing to 1). Parsed from "fitted", "uniform" or "0.1,0.2,...".
struct Priors {
  enum class Kind { Fitted, Uniform, Given } kind = Kind::Fitted;
  std::vector<double> values;  ///< Given only
};
Priors parse_priors(const std::string& text);

class GenerativeClassifier : public torch::nn::Module {
 public:
  GenerativeClassifier(int64_t num_classes, int64_t dims, Priors priors);

  /// Fits on N x D features and N int64 labels in [0, num_classes). Throws gm::Error for a
  /// feature count that differs from `dims`, labels out of range, or a class with no samples.
  void fit(const torch::Tensor& x, const torch::Tensor& y);

  /// N x K: log p(x | y = k), normalised densities (probability mass for discrete models).
  virtual torch::Tensor class_log_likelihood(const torch::Tensor& x) const = 0;
  /// N x K: log p(x, y = k) up to a constant per row; what predictions use (cheaper for LDA).
  virtual torch::Tensor discriminant(const torch::Tensor& x) const;
  /// N x K: log p(x, y = k) = log p(x | y = k) + log prior_k.
  torch::Tensor joint_log_likelihood(const torch::Tensor& x) const;
  /// N: log p(x) = logsumexp_k log p(x, y = k).
  torch::Tensor log_marginal(const torch::Tensor& x) const;

  torch::Tensor predict_log_proba(const torch::Tensor& x) const;
  torch::Tensor predict_proba(const torch::Tensor& x) const;
  torch::Tensor predict(const torch::Tensor& x) const;  ///< N int64
  double accuracy(const torch::Tensor& x, const torch::Tensor& y) const;

  /// n draws from p(x | y = k), n x D float64.
  virtual torch::Tensor sample(int64_t n, int64_t k, at::Generator& gen) const = 0;

  int64_t num_classes() const { return num_classes_; }
  int64_t dims() const { return dims_; }
  torch::Tensor log_priors() const { return log_priors_; }
  /// Class counts of the last fit (the buffer is saved, so loaded models know it too).
  torch::Tensor class_counts() const { return class_counts_; }
  bool fitted() const { return class_counts_.sum().item<double>() > 0; }

 protected:
  /// Subclass fit on float64 x and labels already validated; counts = per-class counts (float64).
  virtual void fit_impl(const torch::Tensor& x, const torch::Tensor& y,
                        const torch::Tensor& counts) = 0;
  /// float64 contiguous copy of x after checking it is N x dims (error names the counts).
  torch::Tensor features(const torch::Tensor& x) const;

  int64_t num_classes_, dims_;
  Priors priors_;
  torch::Tensor log_priors_;    // K
  torch::Tensor class_counts_;  // K
};

/// X^T X for an N x D float64 matrix, via the BLAS symmetric rank-k update (half the flops of a
/// general product) with all cores; falls back to a matmul when the BLAS lacks dsyrk.
torch::Tensor gram(const torch::Tensor& x);

/// Per-class statistics in one streaming pass over N x D float32/float64 `x` (float64
/// accumulators, rows split over LibTorch's threads): K x D sums of x and, with `squares`, K x D
/// sums of x^2 (undefined otherwise).
std::pair<torch::Tensor, torch::Tensor> class_moments(const torch::Tensor& x,
                                                      const torch::Tensor& y, int64_t num_classes,
                                                      bool squares);

/// K x D counts of x > threshold per class, one streaming pass (binarising without a copy).
torch::Tensor class_counts_above(const torch::Tensor& x, const torch::Tensor& y,
                                 int64_t num_classes, double threshold);

}  // namespace gm::classic
