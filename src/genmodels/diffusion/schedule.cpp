// Linear and cosine noise schedules (Ho et al. 2020; Nichol & Dhariwal 2021), q(x_t | x_0) and
// the VP schedule's sigma view (Karras et al. 2022, Table 1).
#include "genmodels/diffusion/schedule.h"

#include <cmath>
#include <sstream>

#include "genmodels/core/error.h"

namespace gm::diffusion {
namespace {

void check_steps(int64_t T, const char* who) {
  if (T < 1) throw Error(std::string(who) + ": T = " + std::to_string(T) + " must be >= 1");
}

torch::Tensor f64(int64_t n) { return torch::empty({n}, torch::dtype(torch::kDouble)); }

void check_schedule(const NoiseSchedule& s, const char* who) {
  if (s.num_steps() < 1) {
    throw Error(std::string(who) + ": empty noise schedule; build one with make_schedule");
  }
}

double sigma_of_abar(double a) { return std::sqrt((1.0 - a) / a); }

}  // namespace

int64_t NoiseSchedule::num_steps() const {
  return alphas_cumprod.defined() ? alphas_cumprod.size(0) : 0;
}

double NoiseSchedule::alpha_bar(int64_t t) const {
  if (t < 0 || t >= num_steps()) {
    throw Error("alpha_bar: t = " + std::to_string(t) + " outside [0, " +
                std::to_string(num_steps() - 1) + "] of schedule '" + name + "'");
  }
  return alphas_cumprod.data_ptr<double>()[t];
}

// Ho et al. 2020 Sec. 4 (beta_1 = 1e-4 .. beta_T = 0.02), abar_t = prod_{s<=t} (1 - beta_s).
NoiseSchedule linear_schedule(int64_t T, double beta_start, double beta_end) {
  check_steps(T, "linear_schedule");
  const double scale = 1000.0 / static_cast<double>(T);
  const double b0 = beta_start * scale, b1 = beta_end * scale;
  if (!(b0 > 0.0) || !(b1 >= b0) || !(b1 < 1.0)) {
    throw Error("linear_schedule: need 0 < beta_start <= beta_end and beta_end * 1000/T < 1 (got " +
                num(beta_start) + ", " + num(beta_end) + ", T = " + std::to_string(T) +
                "); use more steps or smaller betas");
  }
  NoiseSchedule s;
  s.name = "linear";
  s.betas = torch::linspace(b0, b1, T, torch::dtype(torch::kDouble));
  s.alphas_cumprod = torch::cumprod(1.0 - s.betas, 0);
  return s;
}

// Nichol & Dhariwal 2021, eq. 17 and the beta clipping that follows it.
NoiseSchedule cosine_schedule(int64_t T, double s_offset, double max_beta) {
  check_steps(T, "cosine_schedule");
  if (!(s_offset >= 0.0) || !(max_beta > 0.0 && max_beta < 1.0)) {
    throw Error("cosine_schedule: need s >= 0 and 0 < max_beta < 1 (got s = " + num(s_offset) +
                ", max_beta = " + num(max_beta) + ")");
  }
  const auto f = [&](double u) {
    const double c = std::cos((u + s_offset) / (1.0 + s_offset) * M_PI / 2.0);
    return c * c;
  };
  NoiseSchedule s;
  s.name = "cosine";
  s.betas = f64(T);
  auto* b = s.betas.data_ptr<double>();
  const double f0 = f(0.0);
  for (int64_t i = 0; i < T; ++i) {
    const double a_prev = f(static_cast<double>(i) / T) / f0;
    const double a_next = f(static_cast<double>(i + 1) / T) / f0;
    b[i] = std::min(1.0 - a_next / a_prev, max_beta);
  }
  s.alphas_cumprod = torch::cumprod(1.0 - s.betas, 0);
  return s;
}

std::vector<std::string> schedule_names() { return {"linear", "cosine"}; }

NoiseSchedule schedule_from_sigmas(const std::vector<double>& sigmas, std::string name) {
  const int64_t T = static_cast<int64_t>(sigmas.size());
  check_steps(T, "schedule_from_sigmas");
  NoiseSchedule s;
  s.name = std::move(name);
  s.alphas_cumprod = f64(T);
  s.betas = f64(T);
  auto* a = s.alphas_cumprod.data_ptr<double>();
  auto* b = s.betas.data_ptr<double>();
  for (int64_t i = 0; i < T; ++i) {
    if (!(sigmas[i] > 0.0) || (i > 0 && !(sigmas[i] > sigmas[i - 1])))
      throw Error("schedule_from_sigmas: sigmas must be positive and strictly ascending (index " +
                  std::to_string(i) + " is " + num(sigmas[i]) + ")");
    a[i] = 1.0 / (1.0 + sigmas[i] * sigmas[i]);
    b[i] = i == 0 ? 1.0 - a[0] : 1.0 - a[i] / a[i - 1];
  }
  return s;
}

NoiseSchedule make_schedule(const std::string& name, int64_t T) {
  if (name == "linear") return linear_schedule(T);
  if (name == "cosine") return cosine_schedule(T);
  std::string valid;
  for (const auto& n : schedule_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw Error("unknown noise schedule '" + name + "'; valid: " + valid);
}

// Linear interpolation of abar between integer steps (exact at integer t).
torch::Tensor alpha_bar_at(const NoiseSchedule& s, const torch::Tensor& t) {
  check_schedule(s, "alpha_bar_at");
  const int64_t T = s.num_steps();
  auto tc = t.to(torch::kCPU, torch::kDouble).reshape({-1});
  if (tc.numel() > 0) {
    const double lo = tc.min().item<double>(), hi = tc.max().item<double>();
    if (!(lo >= 0.0) || !(hi <= static_cast<double>(T - 1))) {
      throw Error("timestep " + num(lo >= 0.0 ? hi : lo) + " outside [0, " + std::to_string(T - 1) +
                  "] of schedule '" + s.name + "'");
    }
  }
  auto i0 = tc.floor();
  auto frac = tc - i0;
  auto lo_idx = i0.to(torch::kLong);
  auto hi_idx = torch::clamp_max(lo_idx + 1, T - 1);
  auto a = s.alphas_cumprod.index_select(0, lo_idx) * (1.0 - frac) +
           s.alphas_cumprod.index_select(0, hi_idx) * frac;
  return a.to(t.device());
}

// Karras et al. 2022, Table 1 (VP): sigma(t) = sqrt((1 - abar(t)) / abar(t)).
torch::Tensor sigma_at(const NoiseSchedule& s, const torch::Tensor& t) {
  auto a = alpha_bar_at(s, t);
  return torch::sqrt((1.0 - a) / a);
}

// sigma_at solved for t on alpha_bar_at's piecewise-linear abar (abar strictly decreasing).
torch::Tensor t_at_sigma(const NoiseSchedule& s, const torch::Tensor& sigma) {
  check_schedule(s, "t_at_sigma");
  const int64_t T = s.num_steps();
  auto sc = sigma.to(torch::kCPU, torch::kDouble).reshape({-1});
  if (sc.numel() > 0 && !(sc >= 0.0).all().item<bool>()) {
    throw Error("t_at_sigma: sigma must be >= 0 and not NaN (got min " +
                num(sc.min().item<double>()) + ") for schedule '" + s.name + "'");
  }
  if (T == 1) return torch::zeros_like(sc).to(sigma.device());
  const auto& ab = s.alphas_cumprod;
  auto target = 1.0 / (1.0 + sc * sc);
  // count of abar_i >= abar* (-abar is ascending); the interval is [count - 1, count]
  auto count = torch::searchsorted(-ab, -target, /*out_int32=*/false, /*right=*/true);
  auto lo = (count - 1).clamp(0, T - 2);
  auto a0 = ab.index_select(0, lo), a1 = ab.index_select(0, lo + 1);
  auto frac = ((a0 - target) / (a0 - a1)).clamp(0.0, 1.0);
  return (lo.to(torch::kDouble) + frac).to(sigma.device());
}

double sigma_min(const NoiseSchedule& s) {
  check_schedule(s, "sigma_min");
  return sigma_of_abar(s.alpha_bar(0));
}

double sigma_max(const NoiseSchedule& s) {
  check_schedule(s, "sigma_max");
  return sigma_of_abar(s.alpha_bar(s.num_steps() - 1));
}

// Ho et al. 2020, eq. 4.
torch::Tensor q_sample(const NoiseSchedule& s, const torch::Tensor& x0, const torch::Tensor& t,
                       const torch::Tensor& noise) {
  if (!x0.defined() || x0.dim() < 1 || !noise.defined() || !noise.sizes().equals(x0.sizes())) {
    throw Error("q_sample: noise must have the shape of x0 (" +
                (x0.defined() ? c10::str(x0.sizes()) : std::string("undefined")) + ")");
  }
  if (t.dim() != 1 || t.size(0) != x0.size(0)) {
    throw Error("q_sample: t must hold one timestep per sample (N = " + std::to_string(x0.size(0)) +
                ")");
  }
  std::vector<int64_t> shape(x0.dim(), 1);
  shape[0] = x0.size(0);
  auto abar = alpha_bar_at(s, t).to(x0.scalar_type()).to(x0.device()).view(shape);
  return torch::sqrt(abar) * x0 + torch::sqrt(1.0 - abar) * noise;
}

}  // namespace gm::diffusion
