#include "genmodels/classic/gda.h"

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/core/runtime.h"

namespace gm::classic {

namespace {
constexpr double kLog2Pi = 1.8378770664093453;  // log(2 pi)

std::string format_g(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}
}  // namespace

double ledoit_wolf_from_row_norms(const torch::Tensor& row_sq, const torch::Tensor& cov,
                                  const torch::Tensor& scale) {
  const double n = static_cast<double>(row_sq.size(0)), p = static_cast<double>(cov.size(0));
  torch::Tensor r = cov / torch::outer(scale, scale);  // covariance of the standardised data
  const double trace = torch::trace(r).item<double>();
  const double mu = trace / p;
  const double beta_sum = row_sq.square().sum().item<double>();  // sum of (X~^2)^T X~^2
  const double delta_sum = r.square().sum().item<double>();      // ||X~^T X~ / n||_F^2
  double beta = (beta_sum / n - delta_sum) / (n * p);
  const double delta = (delta_sum - 2.0 * mu * trace + p * mu * mu) / p;
  beta = std::min(beta, delta);
  return beta == 0 ? 0.0 : beta / delta;
}

double ledoit_wolf_standardised(const torch::Tensor& xc, const torch::Tensor& cov) {
  torch::Tensor scale = standard_scale(torch::diagonal(cov));
  return ledoit_wolf_from_row_norms(torch::mv(xc.square(), 1.0 / scale.square()), cov, scale);
}

torch::Tensor standard_scale(const torch::Tensor& variance) {
  return torch::where(variance > 1e-30, variance.sqrt(), torch::ones_like(variance));
}

namespace {

// Rows `index` of x minus `mean`, gathered into a contiguous matrix in one pass, with the squared
// norms of the rows divided by scale^2 (what Ledoit-Wolf needs) computed on the way.
std::pair<torch::Tensor, torch::Tensor> gather_centred(const torch::Tensor& x,
                                                       const torch::Tensor& index,
                                                       const torch::Tensor& mean,
                                                       const torch::Tensor& scale) {
  const int64_t n = index.numel(), d = x.size(1);
  torch::Tensor out = torch::empty({n, d}, torch::kFloat64);
  torch::Tensor row_sq = torch::empty({n}, torch::kFloat64);
  torch::Tensor inv_s2 = (1.0 / scale.square()).contiguous();
  const double* px = x.data_ptr<double>();
  const double* pm = mean.data_ptr<double>();
  const double* pw = inv_s2.data_ptr<double>();
  const int64_t* pi = index.data_ptr<int64_t>();
  double* po = out.data_ptr<double>();
  double* pr = row_sq.data_ptr<double>();
  at::parallel_for(0, n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const double* src = px + pi[i] * d;
      double* dst = po + i * d;
      double acc = 0;
      for (int64_t j = 0; j < d; ++j) {
        const double v = src[j] - pm[j];
        dst[j] = v;
        acc += v * v * pw[j];
      }
      pr[i] = acc;
    }
  });
  return {out, row_sq};
}

}  // namespace

Gda::Gda(int64_t num_classes, int64_t dims, GdaOptions options)
    : GenerativeClassifier(num_classes, dims, options.priors), options_(std::move(options)) {
  if (options_.shrinkage < 0 || options_.shrinkage > 1)
    throw Error("model.shrinkage must be in [0, 1] or auto, got " +
                std::to_string(options_.shrinkage));
  if (options_.reg_param < 0 || options_.reg_param > 1)
    throw Error("model.reg_param must be in [0, 1], got " + std::to_string(options_.reg_param));
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const int64_t nc = options_.shared_covariance ? 1 : num_classes;
  means_ = register_buffer("means", torch::zeros({num_classes, dims}, f64));
  cholesky_ = register_buffer("cholesky", torch::eye(dims, f64).repeat({nc, 1, 1}));
  log_det_ = register_buffer("log_det", torch::zeros({nc}, f64));
  shrinkage_ = register_buffer("shrinkage", torch::zeros({num_classes}, f64));
}

void Gda::fit_impl(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& counts) {
  const int64_t K = num_classes_, D = dims_;
  auto [sums, sq] = class_moments(x, y, K, /*squares=*/true);
  torch::Tensor n = counts.unsqueeze(1);
  means_.copy_(sums / n);
  torch::Tensor variances = (sq / n - means_.square()).clamp_min(0);  // biased, per class
  torch::Tensor order = torch::argsort(y);                            // rows grouped by class
  torch::Tensor shared = torch::zeros({D, D}, torch::kFloat64);
  int64_t start = 0;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t nk = static_cast<int64_t>(counts[k].item<double>());
    torch::Tensor scale = standard_scale(variances[k]);
    auto [xc, row_sq] =
        gather_centred(x, order.narrow(0, start, nk).contiguous(), means_[k].contiguous(), scale);
    start += nk;
    torch::Tensor scatter = gram(xc);  // sum of outer products of the centred rows
    if (options_.shared_covariance) {
      torch::Tensor s = scatter / static_cast<double>(nk);  // biased, as scikit-learn's LDA
      double a = options_.shrinkage;
      if (options_.shrinkage_auto) a = ledoit_wolf_from_row_norms(row_sq, s, scale);
      shrinkage_[k] = a;
      if (a > 0) {
        if (options_.shrinkage_auto) {  // shrink the standardised covariance, map back
          torch::Tensor scale2 = scale.square();
          const double mu = (torch::diagonal(s) / scale2).sum().item<double>() / D;
          s = (1 - a) * s + torch::diag(a * mu * scale2);
        } else {
          const double mu = torch::trace(s).item<double>() / D;
          s = (1 - a) * s + a * mu * torch::eye(D, torch::kFloat64);
        }
      }
      shared += s * std::exp(log_priors_[k].item<double>());
    } else {
      if (nk < 2)
        throw Error("qda: class " + std::to_string(k) +
                    " has 1 training example; a per-class covariance needs at least 2");
      torch::Tensor c = scatter / static_cast<double>(nk - 1);  // unbiased, as scikit-learn's QDA
      const double r = options_.reg_param;
      if (r > 0) c = (1 - r) * c + r * torch::eye(D, torch::kFloat64);
      cholesky_[k].copy_(c);
    }
  }
  if (options_.shared_covariance) cholesky_[0].copy_(shared);
  // Factor every covariance; a singular one is an error that says how to regularise.
  for (int64_t j = 0; j < cholesky_.size(0); ++j) {
    torch::Tensor sigma = cholesky_[j].clone();
    auto [l, info] = torch::linalg_cholesky_ex(sigma);
    torch::Tensor d2 = torch::diagonal(l).square();
    const double scale = torch::diagonal(sigma).max().item<double>();
    if (info.item<int64_t>() != 0 || !(d2.min().item<double>() > 1e-12 * scale)) {
      const int64_t feat = torch::diagonal(sigma).argmin().item<int64_t>();
      const std::string which = options_.shared_covariance
                                    ? "the shared covariance"
                                    : "class " + std::to_string(j) + "'s covariance";
      throw Error(std::string(options_.shared_covariance ? "lda" : "qda") + ": " + which +
                  " is singular (e.g. feature " + std::to_string(feat) + " has variance " +
                  format_g(torch::diagonal(sigma)[feat].item<double>()) + "); " +
                  (options_.shared_covariance ? "set model.shrinkage=auto (or a value in (0, 1])"
                                              : "set model.reg_param, e.g. 0.05") +
                  " or keep model.dequantize=true");
    }
    cholesky_[j].copy_(l);
    log_det_[j] = 2.0 * torch::diagonal(l).log().sum().item<double>();
  }
}

torch::Tensor Gda::chol(int64_t k) const { return cholesky_[options_.shared_covariance ? 0 : k]; }

torch::Tensor Gda::covariance(int64_t k) const {
  torch::Tensor l = chol(k);
  return torch::mm(l, l.t());
}

torch::Tensor Gda::class_log_likelihood(const torch::Tensor& x_in) const {
  torch::NoGradGuard no_grad;
  torch::Tensor x = features(x_in);
  BlasThreadsScope blas_threads;  // large triangular solves: let BLAS use the cores
  const int64_t K = num_classes_, D = dims_;
  torch::Tensor out = torch::empty({x.size(0), K}, torch::kFloat64);
  if (options_.shared_covariance) {
    // One whitening solve: ||L^-1 (x - mu_k)||^2 = |z|^2 - 2 z.m_k + |m_k|^2.
    torch::Tensor l = chol(0);
    torch::Tensor z = torch::linalg_solve_triangular(l, x.t(), /*upper=*/false);       // D x N
    torch::Tensor m = torch::linalg_solve_triangular(l, means_.t(), /*upper=*/false);  // D x K
    torch::Tensor maha =
        z.square().sum(0).unsqueeze(1) - 2.0 * torch::mm(z.t(), m) + m.square().sum(0).unsqueeze(0);
    out = -0.5 * (maha + D * kLog2Pi + log_det_[0]);
  } else {
    for (int64_t k = 0; k < K; ++k) {
      torch::Tensor z =
          torch::linalg_solve_triangular(chol(k), (x - means_[k]).t(), /*upper=*/false);
      out.select(1, k).copy_(-0.5 * (z.square().sum(0) + D * kLog2Pi + log_det_[k]));
    }
  }
  return out;
}

torch::Tensor Gda::discriminant(const torch::Tensor& x_in) const {
  if (!options_.shared_covariance) return joint_log_likelihood(x_in);
  // LDA is linear: x^T S^-1 mu_k - mu_k^T S^-1 mu_k / 2 + log pi_k (eq. 4.10), the terms shared by
  // all classes dropped. One N x D x K product instead of an N x D x D solve.
  torch::NoGradGuard no_grad;
  torch::Tensor x = features(x_in);
  torch::Tensor w = torch::cholesky_solve(means_.t(), chol(0));  // D x K: S^-1 mu_k
  torch::Tensor bias = -0.5 * (means_.t() * w).sum(0) + log_priors_;
  return torch::addmm(bias.unsqueeze(0), x, w);
}

torch::Tensor Gda::sample(int64_t n, int64_t k, at::Generator& gen) const {
  if (k < 0 || k >= num_classes_)
    throw Error("class " + std::to_string(k) + " is outside [0, " + std::to_string(num_classes_) +
                ")");
  torch::NoGradGuard no_grad;
  torch::Tensor z = at::randn({n, dims_}, gen, torch::kFloat64);
  return torch::addmm(means_[k].unsqueeze(0), z, chol(k).t());  // mu + L z
}

}  // namespace gm::classic
