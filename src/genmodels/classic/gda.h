// Gaussian discriminant analysis: p(x | y = k) = N(x; mu_k, Sigma_k) with one shared covariance
// (linear discriminant analysis, LDA) or one per class (quadratic, QDA). Hastie, Tibshirani &
// Friedman 2009, sec. 4.3 (eq. 4.8-4.12); Murphy 2012, sec. 4.2.
//
// Covariance estimates follow scikit-learn's so results compare one to one:
//  - LDA: per-class biased covariances S_k, each optionally shrunk, averaged with the priors.
//    Fixed shrinkage a: (1 - a) S_k + a (tr S_k / D) I. "auto": the Ledoit-Wolf a (Ledoit & Wolf
//    2004, "A well-conditioned estimator for large-dimensional covariance matrices", lemma 3.2 -
//    3.4) computed on standardised features and mapped back.
//  - QDA: per-class unbiased covariances C_k, regularised as (1 - r) C_k + r I (reg_param).
// A covariance that is singular (e.g. a feature constant within a class) is an error that names
// the fix, never NaN probabilities.
#pragma once
#include "genmodels/classic/generative_classifier.h"

namespace gm::classic {

struct GdaOptions {
  bool shared_covariance = true;  ///< true: LDA, false: QDA
  double shrinkage = 0;           ///< LDA: fixed shrinkage in [0, 1]
  bool shrinkage_auto = false;    ///< LDA: Ledoit-Wolf shrinkage per class
  double reg_param = 0;           ///< QDA: (1 - r) C_k + r I, r in [0, 1]
  Priors priors;
};

class Gda : public GenerativeClassifier {
 public:
  Gda(int64_t num_classes, int64_t dims, GdaOptions options);

  torch::Tensor class_log_likelihood(const torch::Tensor& x) const override;
  torch::Tensor discriminant(const torch::Tensor& x) const override;
  torch::Tensor sample(int64_t n, int64_t k, at::Generator& gen) const override;

  torch::Tensor means() const { return means_; }  ///< K x D
  /// Covariance of class k (the shared one for LDA), D x D float64.
  torch::Tensor covariance(int64_t k) const;
  /// Shrinkage used per class (LDA; the Ledoit-Wolf estimate under "auto").
  torch::Tensor shrinkage() const { return shrinkage_; }
  const GdaOptions& options() const { return options_; }

 protected:
  void fit_impl(const torch::Tensor& x, const torch::Tensor& y,
                const torch::Tensor& counts) override;

 private:
  torch::Tensor chol(int64_t k) const;
  GdaOptions options_;
  torch::Tensor means_;      // K x D
  torch::Tensor cholesky_;   // (1 or K) x D x D, lower: Sigma = L L^T
  torch::Tensor log_det_;    // (1 or K): log det Sigma
  torch::Tensor shrinkage_;  // K
};

/// Ledoit-Wolf shrinkage of centred data `xc` (N x D) whose biased covariance is `cov`, on
/// standardised features as scikit-learn's LDA does. Costs O(N D) beyond `cov`: the estimator
/// needs only the sum of all entries of (X o X)^T (X o X), which is sum_i (sum_d x_id^2)^2.
double ledoit_wolf_standardised(const torch::Tensor& xc, const torch::Tensor& cov);

/// The same from precomputed sum_d (x_id / scale_d)^2 per row, the biased covariance and the
/// standardising scale (standard_scale of the feature variances).
double ledoit_wolf_from_row_norms(const torch::Tensor& row_sq, const torch::Tensor& cov,
                                  const torch::Tensor& scale);

/// StandardScaler's scale: sqrt(variance), 1 for (numerically) constant features.
torch::Tensor standard_scale(const torch::Tensor& variance);

}  // namespace gm::classic
