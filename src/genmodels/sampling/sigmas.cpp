// Noise-level grids and the counted denoiser of sigma-space samplers.
#include "genmodels/sampling/sigmas.h"

#include <cmath>

#include "genmodels/core/error.h"

namespace gm::sampling {

SigmaGrid parse_sigma_grid(const std::string& name) {
  if (name == "discrete") return SigmaGrid::Discrete;
  if (name == "karras") return SigmaGrid::Karras;
  if (name == "exponential") return SigmaGrid::Exponential;
  std::string valid;
  for (const auto& v : sigma_grid_names()) valid += (valid.empty() ? "" : ", ") + v;
  throw Error("unknown sample.schedule '" + name + "'; valid: " + valid);
}

std::string to_string(SigmaGrid g) {
  switch (g) {
    case SigmaGrid::Discrete:
      return "discrete";
    case SigmaGrid::Karras:
      return "karras";
    case SigmaGrid::Exponential:
      return "exponential";
  }
  return "?";
}

std::vector<std::string> sigma_grid_names() { return {"discrete", "karras", "exponential"}; }

std::vector<double> karras_sigmas(int64_t n, double lo, double hi, double rho) {
  if (n < 1) throw Error("karras_sigmas: need n >= 1, got " + std::to_string(n));
  if (!(lo > 0.0) || !(hi >= lo) || !(rho > 0.0))
    throw Error("karras_sigmas: need 0 < sigma_min <= sigma_max and rho > 0");
  std::vector<double> s(n);
  const double a = std::pow(hi, 1.0 / rho), b = std::pow(lo, 1.0 / rho);
  for (int64_t i = 0; i < n; ++i) {
    const double r = n == 1 ? 0.0 : static_cast<double>(i) / static_cast<double>(n - 1);
    s[i] = std::pow(a + r * (b - a), rho);  // Karras et al. 2022 eq. 5
  }
  s.front() = hi;
  if (n > 1) s.back() = lo;
  return s;
}

std::vector<double> exponential_sigmas(int64_t n, double lo, double hi) {
  if (n < 1) throw Error("exponential_sigmas: need n >= 1, got " + std::to_string(n));
  if (!(lo > 0.0) || !(hi >= lo))
    throw Error("exponential_sigmas: need 0 < sigma_min <= sigma_max");
  std::vector<double> s(n);
  for (int64_t i = 0; i < n; ++i) {
    const double r = n == 1 ? 0.0 : static_cast<double>(i) / static_cast<double>(n - 1);
    s[i] = std::exp(std::log(hi) + r * (std::log(lo) - std::log(hi)));
  }
  s.front() = hi;
  if (n > 1) s.back() = lo;
  return s;
}

std::vector<double> make_sigmas(const diffusion::Denoiser& d, const GridOptions& o) {
  if (o.steps < 1) throw Error("sample.steps must be >= 1, got " + std::to_string(o.steps));
  const double lo = d.sigma_min(), hi = d.sigma_max();
  constexpr double kSlack = 1e-5;
  const std::string range = "[" + num(lo) + ", " + num(hi) + "]";
  if (o.sigma_min < 0.0 || (o.sigma_min > 0.0 && o.sigma_min < lo * (1.0 - kSlack)))
    throw Error("sample.sigma_min = " + num(o.sigma_min) +
                " is outside the model's trained noise range " + range +
                "; use a value inside it, or 0 for the model's own");
  if (o.sigma_max < 0.0 || o.sigma_max > hi * (1.0 + kSlack))
    throw Error("sample.sigma_max = " + num(o.sigma_max) +
                " is outside the model's trained noise range " + range +
                "; use a value inside it, or 0 for the model's own");
  const double s_lo = o.sigma_min > 0.0 ? std::max(o.sigma_min, lo) : lo;
  const double s_hi = o.sigma_max > 0.0 ? std::min(o.sigma_max, hi) : hi;
  if (!(s_lo < s_hi))
    throw Error("sample.sigma_min = " + num(s_lo) +
                " must be below sample.sigma_max = " + num(s_hi));
  if (!(o.rho > 0.0)) throw Error("sample.rho must be > 0, got " + num(o.rho));
  std::vector<double> s;
  switch (o.grid) {
    case SigmaGrid::Discrete: {
      const int64_t T = d.schedule().num_steps();
      if (o.steps > T)
        throw Error("sample.steps = " + std::to_string(o.steps) + " exceeds the model's " +
                    std::to_string(T) + " timesteps (schedule discrete)");
      const auto ts = respace_timesteps(T, o.steps, o.spacing);
      auto sig = diffusion::sigma_at(d.schedule(), torch::tensor(ts, torch::kDouble));
      for (int64_t i = 0; i < sig.size(0); ++i) {
        const double v = sig[i].item<double>();
        if (v >= s_lo * (1.0 - kSlack) && v <= s_hi * (1.0 + kSlack)) s.push_back(v);
      }
      if (s.empty())
        throw Error("sample.sigma_min/sigma_max leave none of the " + std::to_string(o.steps) +
                    " discrete timesteps");
      break;
    }
    case SigmaGrid::Karras:
      s = karras_sigmas(o.steps, s_lo, s_hi, o.rho);
      break;
    case SigmaGrid::Exponential:
      s = exponential_sigmas(o.steps, s_lo, s_hi);
      break;
  }
  s.push_back(0.0);
  return s;
}

SigmaModel::SigmaModel(const diffusion::Denoiser& d, diffusion::Conditioning cond, bool clip_x0)
    : d_(d), cond_(std::move(cond)), clip_x0_(clip_x0), lo_(d.sigma_min()), hi_(d.sigma_max()) {}

torch::Tensor SigmaModel::operator()(const torch::Tensor& x, double sigma) {
  ++nfe_;
  return d_.denoise(x, torch::full({x.size(0)}, sigma, torch::kDouble), cond_, clip_x0_);
}

torch::Tensor SigmaModel::operator()(const torch::Tensor& x, const torch::Tensor& sigma) {
  ++nfe_;
  return d_.denoise(x, sigma, cond_, clip_x0_);
}

torch::Tensor SigmaModel::rows(const torch::Tensor& x, const torch::Tensor& sigma,
                               const torch::Tensor& index) {
  ++nfe_;
  diffusion::Conditioning c = cond_;
  if (c.labels.defined()) c.labels = c.labels.index_select(0, index.to(c.labels.device()));
  if (c.embedding.defined())
    c.embedding = c.embedding.index_select(0, index.to(c.embedding.device()));
  return d_.denoise(x, sigma, c, clip_x0_);
}

torch::Tensor SigmaModel::clamped(const torch::Tensor& x, double sigma) {
  return (*this)(x, std::min(std::max(sigma, lo_), hi_));
}

}  // namespace gm::sampling
