#include "genmodels/classic/generative_classifier.h"

#include <dlfcn.h>

#include <cmath>
#include <sstream>

#include "genmodels/core/error.h"
#include "genmodels/core/runtime.h"

namespace gm::classic {

Priors parse_priors(const std::string& text) {
  Priors p;
  if (text.empty() || text == "fitted") return p;
  if (text == "uniform") {
    p.kind = Priors::Kind::Uniform;
    return p;
  }
  p.kind = Priors::Kind::Given;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !(v > 0))
      throw Error("model.priors: '" + item + "' in '" + text +
                  "' is not a positive number (use fitted, uniform or p1,p2,... summing to 1)");
    p.values.push_back(v);
  }
  double sum = 0;
  for (double v : p.values) sum += v;
  if (std::abs(sum - 1.0) > 1e-6)
    throw Error("model.priors '" + text + "' sum to " + std::to_string(sum) +
                ", not 1 (use fitted, uniform or p1,p2,... summing to 1)");
  return p;
}

GenerativeClassifier::GenerativeClassifier(int64_t num_classes, int64_t dims, Priors priors)
    : num_classes_(num_classes), dims_(dims), priors_(std::move(priors)) {
  if (num_classes < 2)
    throw Error("a generative classifier needs labelled data with at least 2 classes, got " +
                std::to_string(num_classes));
  if (priors_.kind == Priors::Kind::Given &&
      static_cast<int64_t>(priors_.values.size()) != num_classes)
    throw Error("model.priors gives " + std::to_string(priors_.values.size()) + " values for " +
                std::to_string(num_classes) + " classes");
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  log_priors_ =
      register_buffer("log_priors", torch::full({num_classes}, -std::log(num_classes), f64));
  class_counts_ = register_buffer("class_counts", torch::zeros({num_classes}, f64));
}

torch::Tensor GenerativeClassifier::features(const torch::Tensor& x) const {
  if (x.dim() != 2 || x.size(1) != dims_) {
    std::ostringstream s;
    s << "features have shape " << x.sizes() << " but the model was built for " << dims_
      << " features per example (N x " << dims_ << "); use data of the fitted kind";
    throw Error(s.str());
  }
  return x.to(torch::kFloat64).contiguous();
}

void GenerativeClassifier::fit(const torch::Tensor& x_in, const torch::Tensor& y_in) {
  torch::NoGradGuard no_grad;
  torch::Tensor x = features(x_in);
  torch::Tensor y = y_in.to(torch::kInt64).contiguous();
  if (y.dim() != 1 || y.size(0) != x.size(0))
    throw Error("fit: " + std::to_string(x.size(0)) + " examples but " + std::to_string(y.numel()) +
                " labels");
  if (y.numel() == 0) throw Error("fit: no training examples");
  const int64_t lo = y.min().item<int64_t>(), hi = y.max().item<int64_t>();
  if (lo < 0 || hi >= num_classes_)
    throw Error("fit: label " + std::to_string(lo < 0 ? lo : hi) + " is outside [0, " +
                std::to_string(num_classes_) + ")");
  torch::Tensor counts = torch::bincount(y, {}, num_classes_).to(torch::kFloat64);
  for (int64_t k = 0; k < num_classes_; ++k)
    if (counts[k].item<double>() == 0)
      throw Error("fit: class " + std::to_string(k) +
                  " has no training examples; every class needs at least one (check data.limit "
                  "or the labels)");
  class_counts_.copy_(counts);
  switch (priors_.kind) {
    case Priors::Kind::Fitted:
      log_priors_.copy_(torch::log(counts / counts.sum()));
      break;
    case Priors::Kind::Uniform:
      log_priors_.fill_(-std::log(num_classes_));
      break;
    case Priors::Kind::Given:
      log_priors_.copy_(torch::log(torch::tensor(priors_.values, torch::kFloat64)));
      break;
  }
  fit_impl(x, y, counts);
}

torch::Tensor GenerativeClassifier::discriminant(const torch::Tensor& x) const {
  return joint_log_likelihood(x);
}

torch::Tensor GenerativeClassifier::joint_log_likelihood(const torch::Tensor& x) const {
  return class_log_likelihood(x) + log_priors_.unsqueeze(0);
}

torch::Tensor GenerativeClassifier::log_marginal(const torch::Tensor& x) const {
  return torch::logsumexp(joint_log_likelihood(x), 1);
}

torch::Tensor GenerativeClassifier::predict_log_proba(const torch::Tensor& x) const {
  return torch::log_softmax(discriminant(x), 1);
}

torch::Tensor GenerativeClassifier::predict_proba(const torch::Tensor& x) const {
  return torch::softmax(discriminant(x), 1);
}

torch::Tensor GenerativeClassifier::predict(const torch::Tensor& x) const {
  return discriminant(x).argmax(1);
}

double GenerativeClassifier::accuracy(const torch::Tensor& x, const torch::Tensor& y) const {
  return predict(x).eq(y.to(torch::kInt64)).to(torch::kFloat64).mean().item<double>();
}

namespace {
// Fortran BLAS symmetric rank-k update, resolved from the BLAS LibTorch already loaded.
using DsyrkFn = void (*)(const char* uplo, const char* trans, const int* n, const int* k,
                         const double* alpha, const double* a, const int* lda, const double* beta,
                         double* c, const int* ldc);
DsyrkFn find_dsyrk() {
  static DsyrkFn fn = reinterpret_cast<DsyrkFn>(dlsym(RTLD_DEFAULT, "dsyrk_"));
  return fn;
}
}  // namespace

torch::Tensor gram(const torch::Tensor& x_in) {
  torch::Tensor x = x_in.to(torch::kFloat64).contiguous();
  const int64_t n = x.size(0), d = x.size(1);
  DsyrkFn syrk = find_dsyrk();
  if (!syrk || n > INT32_MAX || d > INT32_MAX) return torch::mm(x.t(), x);
  BlasThreadsScope blas_threads;
  // Row-major N x D is column-major D x N (= A); A A^T is X^T X. Lower triangle (column-major)
  // is the upper triangle of the row-major result; mirror it.
  torch::Tensor c = torch::zeros({d, d}, torch::kFloat64);
  const int ni = static_cast<int>(d), ki = static_cast<int>(n);
  const double one = 1.0, zero = 0.0;
  syrk("L", "N", &ni, &ki, &one, x.data_ptr<double>(), &ni, &zero, c.data_ptr<double>(), &ni);
  torch::Tensor upper = torch::triu(c);
  return upper + upper.t() - torch::diag(torch::diagonal(c));
}

namespace {

// Mode of the streaming pass: sums, sums and squares, or counts above a threshold.
enum class Stat { Sum, SumSquares, Above };

template <typename T>
void accumulate_rows(const T* x, const int64_t* y, int64_t begin, int64_t end, int64_t d, Stat stat,
                     double threshold, double* acc, double* acc2) {
  for (int64_t i = begin; i < end; ++i) {
    const T* row = x + i * d;
    double* s = acc + y[i] * d;
    if (stat == Stat::Above) {
      const T t = static_cast<T>(threshold);
      for (int64_t j = 0; j < d; ++j) s[j] += row[j] > t ? 1.0 : 0.0;
    } else if (stat == Stat::SumSquares) {
      double* q = acc2 + y[i] * d;
      for (int64_t j = 0; j < d; ++j) {
        const double v = row[j];
        s[j] += v;
        q[j] += v * v;
      }
    } else {
      for (int64_t j = 0; j < d; ++j) s[j] += row[j];
    }
  }
}

// One pass over the rows, split into one contiguous chunk per thread, each with its own
// accumulators (summed at the end, so the result does not depend on scheduling).
std::pair<torch::Tensor, torch::Tensor> class_pass(const torch::Tensor& x_in,
                                                   const torch::Tensor& y_in, int64_t k, Stat stat,
                                                   double threshold) {
  torch::Tensor x = x_in.scalar_type() == torch::kFloat32 ? x_in.contiguous()
                                                          : x_in.to(torch::kFloat64).contiguous();
  torch::Tensor y = y_in.to(torch::kInt64).contiguous();
  const int64_t n = x.size(0), d = x.size(1);
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(torch::get_num_threads(), n));
  const int64_t nacc = stat == Stat::SumSquares ? 2 : 1;
  torch::Tensor acc = torch::zeros({chunks, nacc, k, d}, torch::kFloat64);
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
      double* a = acc[c].data_ptr<double>();
      double* a2 = nacc == 2 ? a + k * d : nullptr;
      if (x.scalar_type() == torch::kFloat32)
        accumulate_rows(x.data_ptr<float>(), y.data_ptr<int64_t>(), b, e, d, stat, threshold, a,
                        a2);
      else
        accumulate_rows(x.data_ptr<double>(), y.data_ptr<int64_t>(), b, e, d, stat, threshold, a,
                        a2);
    }
  });
  torch::Tensor total = acc.sum(0);
  return {total[0], nacc == 2 ? total[1] : torch::Tensor()};
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> class_moments(const torch::Tensor& x,
                                                      const torch::Tensor& y, int64_t num_classes,
                                                      bool squares) {
  return class_pass(x, y, num_classes, squares ? Stat::SumSquares : Stat::Sum, 0.0);
}

torch::Tensor class_counts_above(const torch::Tensor& x, const torch::Tensor& y,
                                 int64_t num_classes, double threshold) {
  return class_pass(x, y, num_classes, Stat::Above, threshold).first;
}

}  // namespace gm::classic
