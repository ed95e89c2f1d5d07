// Frechet distance (FID) in double precision; see fid.h.
#include "genmodels/metrics/fid.h"

#include <cmath>

#include "genmodels/core/error.h"

namespace gm::metrics {

namespace {

torch::Tensor as_double_matrix(const torch::Tensor& t, const char* what) {
  if (!t.defined() || t.dim() != 2)
    throw Error(std::string(what) + " must be a 2-D tensor, got " +
                (t.defined() ? c10::str(t.sizes()) : "an undefined tensor"));
  return t.to(torch::kFloat64).contiguous();
}

// Symmetric square root V diag(sqrt(max(l, 0))) V^T of a symmetric PSD matrix.
torch::Tensor sqrt_psd(const torch::Tensor& s) {
  auto [l, v] = torch::linalg::eigh(0.5 * (s + s.t()), "L");
  return torch::matmul(v * l.clamp_min(0).sqrt().unsqueeze(0), v.t());
}

}  // namespace

FeatureStats feature_stats(const torch::Tensor& features) {
  torch::Tensor f = as_double_matrix(features, "features");
  if (f.size(0) < 2)
    throw Error("feature statistics need at least 2 samples, got " + std::to_string(f.size(0)));
  torch::Tensor mu = f.mean(0);
  torch::Tensor c = f - mu;
  return {mu, torch::matmul(c.t(), c) / double(f.size(0) - 1)};
}

double trace_sqrt_product(const torch::Tensor& sigma1, const torch::Tensor& sigma2) {
  torch::Tensor s1 = as_double_matrix(sigma1, "sigma1"), s2 = as_double_matrix(sigma2, "sigma2");
  // S1 S2 is similar to the PSD matrix M = sqrt(S1) S2 sqrt(S1), so tr sqrtm(S1 S2) = tr sqrt(M).
  torch::Tensor r = sqrt_psd(s1);
  torch::Tensor m = torch::matmul(torch::matmul(r, s2), r);
  torch::Tensor l = torch::linalg::eigvalsh(0.5 * (m + m.t()), "L");
  return l.clamp_min(0).sqrt().sum().item<double>();
}

double frechet_distance(const torch::Tensor& mu1, const torch::Tensor& sigma1,
                        const torch::Tensor& mu2, const torch::Tensor& sigma2) {
  const int64_t d = mu1.numel();
  if (mu2.numel() != d || sigma1.dim() != 2 || sigma2.dim() != 2 || sigma1.size(0) != d ||
      sigma1.size(1) != d || sigma2.size(0) != d || sigma2.size(1) != d)
    throw Error("frechet_distance: shapes do not match (mu1 " + c10::str(mu1.sizes()) +
                ", sigma1 " + c10::str(sigma1.sizes()) + ", mu2 " + c10::str(mu2.sizes()) +
                ", sigma2 " + c10::str(sigma2.sizes()) + "); use features of one evaluator");
  torch::Tensor diff = mu1.to(torch::kFloat64).flatten() - mu2.to(torch::kFloat64).flatten();
  const double mean_term = diff.dot(diff).item<double>();
  const double trace_term = sigma1.to(torch::kFloat64).trace().item<double>() +
                            sigma2.to(torch::kFloat64).trace().item<double>() -
                            2.0 * trace_sqrt_product(sigma1, sigma2);
  return mean_term + trace_term;
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  return frechet_distance(a.mu, a.sigma, b.mu, b.sigma);
}

double fid(const torch::Tensor& features_a, const torch::Tensor& features_b) {
  return frechet_distance(feature_stats(features_a), feature_stats(features_b));
}

}  // namespace gm::metrics
