// Probability-flow ODE likelihood with the Hutchinson estimator (see likelihood.h).
#include "genmodels/score/likelihood.h"

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/sampling/rk45.h"
#include "genmodels/sampling/sigmas.h"

namespace gm::score {

torch::Tensor rademacher_like(const torch::Tensor& x, at::Generator& gen) {
  return at::randint(0, 2, x.sizes(), gen, torch::dtype(torch::kFloat32))
      .mul_(2)
      .sub_(1)
      .to(x.options());
}

torch::Tensor jacobian_trace(const std::function<torch::Tensor(const torch::Tensor&)>& fn,
                             const torch::Tensor& x, const torch::Tensor& probe, bool exact) {
  torch::AutoGradMode grad_on(true);
  const int64_t n = x.size(0), dim = x.numel() / std::max<int64_t>(n, 1);
  torch::Tensor xr = x.detach().requires_grad_(true);
  torch::Tensor out = fn(xr).reshape({n, dim});
  if (!exact) {
    torch::Tensor z = probe.reshape({n, dim}).to(out.dtype());
    torch::Tensor vjp = torch::autograd::grad({out}, {xr}, {z})[0].reshape({n, dim});
    return (vjp * z).sum(1).to(torch::kDouble);
  }
  torch::Tensor tr = torch::zeros({n}, torch::kDouble);
  for (int64_t i = 0; i < dim; ++i) {
    torch::Tensor e = torch::zeros_like(out);
    e.select(1, i).fill_(1.0);
    torch::Tensor g = torch::autograd::grad({out}, {xr}, {e}, /*retain_graph=*/true)[0];
    tr += g.reshape({n, dim}).select(1, i).to(torch::kDouble);
  }
  return tr;
}

LikelihoodResult ode_log_likelihood(const diffusion::Denoiser& d, const torch::Tensor& x,
                                    const diffusion::Conditioning& cond, const torch::Tensor& probe,
                                    const LikelihoodOptions& o,
                                    const std::function<void(double)>& progress) {
  if (!x.defined() || x.dim() < 2 || x.size(0) < 1)
    throw Error("ode_log_likelihood: x must be a non-empty N x ... batch");
  if (!o.exact_trace && (!probe.defined() || !probe.sizes().equals(x.sizes())))
    throw Error("ode_log_likelihood: the probe must be shaped like x " + c10::str(x.sizes()) +
                " (e.g. rademacher_like(x, gen)), or set exact_trace");
  const double lo = o.sigma_min > 0.0 ? o.sigma_min : d.sigma_min();
  const double hi = o.sigma_max > 0.0 ? o.sigma_max : d.sigma_max();
  if (!(lo >= d.sigma_min() * (1 - 1e-9)) || !(hi <= d.sigma_max() * (1 + 1e-9)) || !(lo < hi))
    throw Error("ode_log_likelihood: sigma range [" + num(lo) + ", " + num(hi) +
                "] must lie inside the model's [" + num(d.sigma_min()) + ", " + num(d.sigma_max()) +
                "]");
  const int64_t n = x.size(0), dim = x.numel() / n;
  std::vector<int64_t> shape = x.sizes().vec();
  sampling::SigmaModel m(d, cond, false);
  const torch::Tensor z = o.exact_trace ? torch::Tensor() : probe.reshape({n, dim});

  // State rows: [x (dim values), integral of div f]; derivative [x - D, dim - div D].
  auto f = [&](const torch::Tensor& y, const torch::Tensor& u, const torch::Tensor& rows) {
    const int64_t r = y.size(0);
    std::vector<int64_t> rshape = shape;
    rshape[0] = r;
    const torch::Tensor sigma = torch::exp(u);
    torch::Tensor D;
    auto fn = [&](const torch::Tensor& xr) {
      D = m.rows(xr, sigma, rows);
      return D;
    };
    const torch::Tensor xr = y.narrow(1, 0, dim).reshape(rshape);
    const torch::Tensor zr =
        z.defined() ? z.index_select(0, rows).reshape(rshape) : torch::Tensor();
    const torch::Tensor div_d = jacobian_trace(fn, xr, zr, o.exact_trace);
    const torch::Tensor zz = z.defined() ? (zr * zr).reshape({r, dim}).sum(1).to(torch::kDouble)
                                         : torch::full({r}, double(dim), torch::kDouble);
    torch::Tensor dx = (xr - D.detach()).reshape({r, dim});
    return torch::cat({dx, (zz - div_d).to(dx.dtype()).unsqueeze(1)}, 1);
  };
  torch::Tensor y0 = torch::cat({x.reshape({n, dim}), torch::zeros({n, 1}, x.options())}, 1);
  sampling::Rk45Options ro;
  ro.rtol = o.rtol;
  ro.atol = o.atol;
  torch::NoGradGuard no_grad;
  sampling::Rk45Result res = sampling::solve_rk45(f, y0, std::log(lo), std::log(hi), ro, progress);
  LikelihoodResult out;
  out.x_prior = res.y.narrow(1, 0, dim).reshape(shape);
  out.delta = res.y.select(1, dim).to(torch::kDouble);
  const double var = o.prior_var > 0.0 ? o.prior_var : 1.0 + hi * hi;
  const torch::Tensor sq = out.x_prior.reshape({n, dim}).to(torch::kDouble).pow(2).sum(1);
  out.prior_logp = -0.5 * double(dim) * std::log(2.0 * M_PI * var) - 0.5 * sq / var;
  out.log_p = out.prior_logp + out.delta;
  out.nfe = m.nfe();
  return out;
}

std::vector<double> log_spaced(double lo, double hi, int64_t count) {
  if (!(lo > 0.0) || !(hi >= lo) || count < 1)
    throw Error("log_spaced: needs 0 < lo <= hi and count >= 1 (got " + num(lo) + ", " + num(hi) +
                ", " + std::to_string(count) + ")");
  std::vector<double> out(count);
  for (int64_t i = 0; i < count; ++i)
    out[i] = count == 1 ? lo : lo * std::pow(hi / lo, double(i) / double(count - 1));
  return out;
}

std::vector<DenoiseError> denoising_error(const diffusion::Denoiser& d, const torch::Tensor& x,
                                          const diffusion::Conditioning& cond,
                                          const std::vector<double>& sigmas, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  const torch::Tensor noise = at::randn(x.sizes(), gen, torch::kFloat32).to(x.device());
  const double dims = double(x.numel());
  std::vector<DenoiseError> out;
  for (double sigma : sigmas) {
    const torch::Tensor x0 =
        d.denoise(x + noise * sigma, torch::full({}, sigma, torch::kFloat32), cond);
    DenoiseError e;
    e.sigma = sigma;
    e.mse_x0 = (x0.to(torch::kDouble) - x.to(torch::kDouble)).square().sum().item<double>() / dims;
    e.mse_eps = e.mse_x0 / (sigma * sigma);
    out.push_back(e);
  }
  return out;
}

}  // namespace gm::score
