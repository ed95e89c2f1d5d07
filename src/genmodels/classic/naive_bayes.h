// Naive Bayes: features independent given the class (Murphy 2012, sec. 3.5; Manning, Raghavan &
// Schuetze 2008, sec. 13.3 for the Bernoulli event model). Estimates follow scikit-learn's
// GaussianNB and BernoulliNB so results compare one to one.
#pragma once
#include "genmodels/classic/generative_classifier.h"

namespace gm::classic {

/// p(x | y = k) = prod_d N(x_d; theta_kd, var_kd). Variances are the biased per-class variances
/// plus var_smoothing times the largest feature variance of the whole training set (scikit-learn's
/// stabiliser; raise it for smoother densities and samples).
class GaussianNaiveBayes : public GenerativeClassifier {
 public:
  GaussianNaiveBayes(int64_t num_classes, int64_t dims, double var_smoothing, Priors priors);
  torch::Tensor class_log_likelihood(const torch::Tensor& x) const override;
  torch::Tensor sample(int64_t n, int64_t k, at::Generator& gen) const override;
  torch::Tensor means() const { return theta_; }    ///< K x D
  torch::Tensor variances() const { return var_; }  ///< K x D (smoothed)

 protected:
  void fit_impl(const torch::Tensor& x, const torch::Tensor& y,
                const torch::Tensor& counts) override;

 private:
  double var_smoothing_;
  torch::Tensor theta_, var_;
};

/// p(x | y = k) = prod_d p_kd^b_d (1 - p_kd)^(1 - b_d) over binarised features b_d = [x_d > t];
/// p_kd = (count_kd + alpha) / (n_k + 2 alpha) (Lidstone smoothing; alpha = 1 is Laplace).
/// Densities are probability masses of the binarised vector.
class BernoulliNaiveBayes : public GenerativeClassifier {
 public:
  BernoulliNaiveBayes(int64_t num_classes, int64_t dims, double threshold, double alpha,
                      Priors priors);
  torch::Tensor class_log_likelihood(const torch::Tensor& x) const override;
  /// Draws binary vectors (0/1 as float64).
  torch::Tensor sample(int64_t n, int64_t k, at::Generator& gen) const override;
  torch::Tensor feature_probabilities() const { return log_p_.exp(); }  ///< K x D
  torch::Tensor binarize(const torch::Tensor& x) const;                 ///< float64 0/1
  double threshold() const { return threshold_; }

 protected:
  void fit_impl(const torch::Tensor& x, const torch::Tensor& y,
                const torch::Tensor& counts) override;

 private:
  double threshold_, alpha_;
  torch::Tensor log_p_, log_1mp_;  // K x D: log p_kd, log(1 - p_kd)
};

}  // namespace gm::classic
