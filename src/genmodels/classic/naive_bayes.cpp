#include "genmodels/classic/naive_bayes.h"

#include <cmath>

#include "genmodels/core/error.h"

namespace gm::classic {

namespace {
constexpr double kLog2Pi = 1.8378770664093453;  // log(2 pi)

void check_class(int64_t k, int64_t num_classes) {
  if (k < 0 || k >= num_classes)
    throw Error("class " + std::to_string(k) + " is outside [0, " + std::to_string(num_classes) +
                ")");
}
}  // namespace

GaussianNaiveBayes::GaussianNaiveBayes(int64_t num_classes, int64_t dims, double var_smoothing,
                                       Priors priors)
    : GenerativeClassifier(num_classes, dims, std::move(priors)), var_smoothing_(var_smoothing) {
  if (!(var_smoothing >= 0))
    throw Error("model.var_smoothing must be >= 0, got " + std::to_string(var_smoothing));
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  theta_ = register_buffer("theta", torch::zeros({num_classes, dims}, f64));
  var_ = register_buffer("var", torch::ones({num_classes, dims}, f64));
}

void GaussianNaiveBayes::fit_impl(const torch::Tensor& x, const torch::Tensor& y,
                                  const torch::Tensor& counts) {
  // One streaming pass for sums and sums of squares per class (float64 accumulators).
  auto [sums, sq] = class_moments(x, y, num_classes_, /*squares=*/true);
  torch::Tensor n = counts.unsqueeze(1);
  torch::Tensor mean = sums / n;
  torch::Tensor var = (sq / n - mean.square()).clamp_min(0);
  // Largest variance over the whole training set, from the class statistics (law of total
  // variance).
  torch::Tensor total = counts.sum();
  torch::Tensor grand = (mean * n).sum(0) / total;
  torch::Tensor total_var = ((var + (mean - grand).square()) * n).sum(0) / total;
  const double eps = var_smoothing_ * total_var.max().item<double>();
  if (!(eps > 0) && !(var.min().item<double>() > 0))
    throw Error(
        "gnb: a feature has zero variance within a class and model.var_smoothing is 0; "
        "set model.var_smoothing (e.g. 1e-9) or keep model.dequantize=true");
  theta_.copy_(mean);
  var_.copy_(var + eps);
}

torch::Tensor GaussianNaiveBayes::class_log_likelihood(const torch::Tensor& x_in) const {
  torch::NoGradGuard no_grad;
  torch::Tensor x = features(x_in);
  // -1/2 sum_d [log 2 pi var + (x - theta)^2 / var] expanded into two N x D x K products.
  torch::Tensor inv = 1.0 / var_;  // K x D
  torch::Tensor c = -0.5 * ((var_.log() + kLog2Pi).sum(1) + (theta_.square() * inv).sum(1));
  return torch::addmm(c.unsqueeze(0), x, (theta_ * inv).t()) - 0.5 * torch::mm(x.square(), inv.t());
}

torch::Tensor GaussianNaiveBayes::sample(int64_t n, int64_t k, at::Generator& gen) const {
  check_class(k, num_classes_);
  torch::Tensor z = at::randn({n, dims_}, gen, torch::kFloat64);
  return theta_[k].unsqueeze(0) + z * var_[k].sqrt().unsqueeze(0);
}

BernoulliNaiveBayes::BernoulliNaiveBayes(int64_t num_classes, int64_t dims, double threshold,
                                         double alpha, Priors priors)
    : GenerativeClassifier(num_classes, dims, std::move(priors)),
      threshold_(threshold),
      alpha_(alpha) {
  if (!(alpha > 0))
    throw Error("model.alpha must be > 0 (Lidstone smoothing; 1 = Laplace), got " +
                std::to_string(alpha));
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  log_p_ = register_buffer("log_p", torch::full({num_classes, dims}, std::log(0.5), f64));
  log_1mp_ = register_buffer("log_1mp", torch::full({num_classes, dims}, std::log(0.5), f64));
}

torch::Tensor BernoulliNaiveBayes::binarize(const torch::Tensor& x) const {
  return x.gt(threshold_).to(torch::kFloat64);
}

void BernoulliNaiveBayes::fit_impl(const torch::Tensor& x, const torch::Tensor& y,
                                   const torch::Tensor& counts) {
  torch::Tensor ones = class_counts_above(x, y, num_classes_, threshold_);
  torch::Tensor denom = (counts + 2.0 * alpha_).log().unsqueeze(1);
  log_p_.copy_((ones + alpha_).log() - denom);
  log_1mp_.copy_((counts.unsqueeze(1) - ones + alpha_).log() - denom);
}

torch::Tensor BernoulliNaiveBayes::class_log_likelihood(const torch::Tensor& x_in) const {
  torch::NoGradGuard no_grad;
  torch::Tensor b = binarize(features(x_in));
  // sum_d b log p + (1 - b) log(1 - p) = b . (log p - log(1 - p)) + sum_d log(1 - p)
  return torch::addmm(log_1mp_.sum(1).unsqueeze(0), b, (log_p_ - log_1mp_).t());
}

torch::Tensor BernoulliNaiveBayes::sample(int64_t n, int64_t k, at::Generator& gen) const {
  check_class(k, num_classes_);
  torch::Tensor u = at::rand({n, dims_}, gen, torch::kFloat64);
  return u.lt(log_p_[k].exp().unsqueeze(0)).to(torch::kFloat64);
}

}  // namespace gm::classic
