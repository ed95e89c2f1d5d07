// UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
// Diffusion Models"), data-prediction form with B(h) = e^h - 1 ("bh2"), in sigma space (alpha =
// 1, lambda = -log sigma, h = lambda_next - lambda).
//
// Each step: the UniP-p predictor (Alg. 2's multistep update) moves x from sigma_i to
// sigma_{i+1} using the last p model outputs; D is evaluated there once; the UniC-p corrector
// (Alg. 3) then recomputes x_{i+1} with that new output included, at no extra evaluation; the
// output evaluated at the predicted point is the one kept for the following steps. Orders warm up
// (p <= outputs available) and, with fewer than 15 steps, drop near the end (p <= steps left).
// The last step to sigma = 0 is x = D at the last predicted point (no corrector there: it would
// need one more evaluation).
#include <algorithm>
#include <array>
#include <cmath>
#include <deque>

#include "genmodels/core/error.h"
#include "genmodels/sampling/sigma_samplers.h"

namespace gm::sampling {

namespace {

// Solves the k x k system A rho = b (k <= 3) by Gaussian elimination with partial pivoting.
std::vector<double> solve_small(std::vector<std::vector<double>> A, std::vector<double> b) {
  const size_t k = b.size();
  for (size_t c = 0; c < k; ++c) {
    size_t p = c;
    for (size_t r = c + 1; r < k; ++r)
      if (std::fabs(A[r][c]) > std::fabs(A[p][c])) p = r;
    std::swap(A[c], A[p]);
    std::swap(b[c], b[p]);
    if (std::fabs(A[c][c]) < 1e-300) throw Error("unipc: singular order system (repeated sigmas?)");
    for (size_t r = c + 1; r < k; ++r) {
      const double f = A[r][c] / A[c][c];
      for (size_t q = c; q < k; ++q) A[r][q] -= f * A[c][q];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(k);
  for (size_t c = k; c-- > 0;) {
    double v = b[c];
    for (size_t q = c + 1; q < k; ++q) v -= A[c][q] * x[q];
    x[c] = v / A[c][c];
  }
  return x;
}

// The pieces of one UniPC update of order p from lambda_0 (output m0) to lambda_0 + h: r_k =
// (lambda_{-k} - lambda_0) / h for the p-1 older outputs and r_p = 1; R_{jk} = r_k^(j-1) and
// b_j = phi_{j+1}(hh) j! / B(h) with hh = -h (data prediction), phi via the recursion
// h phi_{k+1} = h phi_k / hh - 1 / k! (Zhao et al. 2023, Sec. 3.1-3.2).
struct UniTerms {
  std::vector<std::vector<double>> R;
  std::vector<double> b;
  std::vector<double> r;  // r_1..r_{p-1}
  double h_phi_1, B_h;
};

UniTerms uni_terms(int64_t p, double h, const std::deque<double>& lambdas) {
  UniTerms u;
  const double hh = -h;
  u.h_phi_1 = std::expm1(hh);
  u.B_h = std::expm1(hh);  // bh2
  const double l0 = lambdas.back();
  for (int64_t k = 1; k < p; ++k) u.r.push_back((lambdas[lambdas.size() - 1 - k] - l0) / h);
  std::vector<double> rks = u.r;
  rks.push_back(1.0);
  double h_phi_k = u.h_phi_1 / hh - 1.0, factorial = 1.0;
  for (int64_t j = 1; j <= p; ++j) {
    std::vector<double> row;
    for (double rk : rks) row.push_back(std::pow(rk, static_cast<double>(j - 1)));
    u.R.push_back(row);
    u.b.push_back(h_phi_k * factorial / u.B_h);
    factorial *= static_cast<double>(j + 1);
    h_phi_k = h_phi_k / hh - 1.0 / factorial;
  }
  return u;
}

}  // namespace

torch::Tensor sample_unipc(torch::Tensor x, const SigmaArgs& a) {
  const int64_t order = a.o.order > 0 ? a.o.order : 2;
  if (order > 3)
    throw Error("sample.order = " + std::to_string(order) + " is not valid for unipc; use 1-3");
  const auto& s = a.sigmas;
  const int64_t n = static_cast<int64_t>(s.size()) - 1;
  std::deque<torch::Tensor> outs;  // model outputs, oldest first
  std::deque<double> lambdas;
  outs.push_back(a.m(x, s[0]));
  lambdas.push_back(-std::log(s[0]));
  for (int64_t i = 0; i < n; ++i) {
    if (s[i + 1] <= 0.0) {
      x = outs.back();
      if (a.callback) a.callback(i + 1, n);
      break;
    }
    // Warm-up: p <= outputs available. With few steps (< 15, as DPM-Solver's multistep
    // schedulers do) also p <= steps left to positive sigmas, which keeps them stable.
    const int64_t left = n < 15 ? n - 1 - i : order;
    const int64_t p = std::min({order, static_cast<int64_t>(outs.size()), left});
    const double h = std::log(s[i] / s[i + 1]);
    const UniTerms u = uni_terms(p, h, lambdas);
    const torch::Tensor& m0 = outs.back();
    std::vector<torch::Tensor> d1;  // (m_{-k} - m0) / r_k
    for (int64_t k = 1; k < p; ++k) d1.push_back((outs[outs.size() - 1 - k] - m0) / u.r[k - 1]);
    const torch::Tensor x_lin = x * (s[i + 1] / s[i]) - m0 * u.h_phi_1;
    // UniP-p: rho_p = 1/2 for p = 2, else the (p-1) x (p-1) system.
    torch::Tensor x_pred = x_lin;
    if (p == 2) {
      x_pred = x_lin - d1[0] * (u.B_h * 0.5);
    } else if (p > 2) {
      std::vector<std::vector<double>> R(p - 1);
      for (int64_t j = 0; j < p - 1; ++j) R[j].assign(u.R[j].begin(), u.R[j].begin() + (p - 1));
      const auto rho = solve_small(R, std::vector<double>(u.b.begin(), u.b.begin() + (p - 1)));
      torch::Tensor res = d1[0] * rho[0];
      for (int64_t k = 1; k < p - 1; ++k) res = res + d1[k] * rho[k];
      x_pred = x_lin - res * u.B_h;
    }
    const torch::Tensor m_new = a.m(x_pred, s[i + 1]);
    // UniC-p (skipped when the next step is the final x = D, which uses m_new as is).
    if (s[i + 2] > 0.0) {  // i <= n - 2, so s[i + 2] exists
      const std::vector<double> rho = p == 1 ? std::vector<double>{0.5} : solve_small(u.R, u.b);
      torch::Tensor res = (m_new - m0) * rho[p - 1];
      for (int64_t k = 0; k < p - 1; ++k) res = res + d1[k] * rho[k];
      x = x_lin - res * u.B_h;
    } else {
      x = x_pred;
    }
    outs.push_back(m_new);
    lambdas.push_back(-std::log(s[i + 1]));
    if (static_cast<int64_t>(outs.size()) > order) {
      outs.pop_front();
      lambdas.pop_front();
    }
    if (a.callback) a.callback(i + 1, n);
  }
  return x;
}

}  // namespace gm::sampling
