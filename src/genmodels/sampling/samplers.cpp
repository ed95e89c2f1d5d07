// The sampler table and the shared sampling prologue.
#include "genmodels/sampling/samplers.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <optional>

#include "genmodels/core/error.h"

namespace gm::sampling {

const KeyTable<SamplerOptions>& sampler_keys() {
  using O = SamplerOptions;
  static const KeyTable<O> table = [] {
    std::vector<std::string> names;
    for (const auto& row : sampler_table()) names.push_back(row.name);
    KeyTable<O> t;
    t.add("sample.sampler", &O::sampler, "sampler (see `genmodels list`)", names);
    t.add("sample.steps", &O::steps,
          "sampler steps (0 = the sampler's default: ddpm all, ddim 50)");
    t.add("sample.eta", &O::eta, "DDIM eta (0 = deterministic, 1 = DDPM-like)");
    t.add("sample.spacing", &O::spacing, "timestep respacing", {"linspace", "leading", "trailing"});
    t.add("sample.variance", &O::variance,
          "DDPM variance (auto: learned for a diffusion.learn_sigma model, Nichol & Dhariwal "
          "2021, else beta_tilde)",
          {"auto", "beta", "beta_tilde", "learned"});
    t.add("sample.guidance", &O::guidance,
          "classifier-free guidance scale (1 = none; 2 sharpens classes but raises FID)");
    t.add("sample.clip_x0", &O::clip_x0, "clip predicted x0 to [-1, 1] while sampling images");
    t.add("sample.schedule", &O::schedule,
          "noise-level grid of the sigma samplers (discrete = the model's timesteps per "
          "sample.spacing)",
          sigma_grid_names());
    t.add("sample.sigma_min", &O::sigma_min, "smallest grid sigma (0 = the model's)");
    t.add("sample.sigma_max", &O::sigma_max,
          "largest grid sigma (0 = the model's); below the model's, the grid is entered by one "
          "DDIM step from the model's prior (1 NFE)");
    t.add("sample.rho", &O::rho, "Karras grid exponent (Karras et al. 2022 eq. 5)");
    t.add("sample.heun", &O::heun,
          "heun's correction: exponential (trapezoid on D, stable for any step ratio) or karras "
          "(Alg. 2 verbatim, as k-diffusion; diverges on cosine schedules' full sigma range)",
          {"exponential", "karras"});
    t.add("sample.s_churn", &O::s_churn, "euler/heun churn (Karras et al. 2022 Alg. 2; 0 = ODE)");
    t.add("sample.s_noise", &O::s_noise, "scale of the noise the stochastic samplers add");
    t.add("sample.s_tmin", &O::s_tmin, "churn only at sigma >= s_tmin");
    t.add("sample.s_tmax", &O::s_tmax, "churn only at sigma <= s_tmax (0 = no limit)");
    t.add("sample.ancestral_eta", &O::ancestral_eta,
          "noise of euler_a, dpm++2s_a, dpm++2m_sde (1 = full, 0 = their ODE form)");
    t.add("sample.order", &O::order, "solver order: unipc 1-3 (default 2), lms 1-4 (default 4)");
    t.add("sample.predictor", &O::predictor,
          "pc: predictor (euler_maruyama needs ~1000 steps; ancestral is exact per step for "
          "Gaussian data)",
          {"euler_maruyama", "ancestral"});
    t.add("sample.snr", &O::snr, "pc: Langevin corrector signal-to-noise ratio");
    t.add("sample.corrector_steps", &O::corrector_steps, "pc: Langevin steps per noise level");
    t.add("sample.rtol", &O::rtol, "ode: RK45 relative tolerance");
    t.add("sample.atol", &O::atol, "ode: RK45 absolute tolerance");
    t.add("sample.langevin_steps", &O::langevin_steps, "langevin: steps T per noise level");
    t.add("sample.langevin_eps", &O::langevin_eps,
          "langevin: step size alpha_i = eps sigma_i^2 / sigma_L^2 (0 = NCSNv2 technique 4)");
    return t;
  }();
  return table;
}

namespace {

using SigmaFn = torch::Tensor (*)(torch::Tensor, const SigmaArgs&);

// A sigma-space row: x_T (unit variance) scaled to the grid's first sigma, x = x_T sqrt(1 +
// sigma_0^2) (the VP prior x_T / sqrt(abar) in sigma space), then the sampler.
// A grid that starts below the model's sigma_max because sample.sigma_max is set lower is entered
// from the model's prior, not from pure noise at the grid's top: one deterministic first-order step
// (DDIM, Song et al. 2021a eq. 12, in sigma space x = D + (s0 / s_max)(x - D); 1 NFE) from x_T at
// sigma_max to s0. It carries the data mean that x_{s0} = x0 + s0 z has and N(0, 1 + s0^2)
// lacks; starting from pure noise at sigma = 80 cost the 60-minute Fashion-MNIST model about 2 FID
// (dpm++2m at 10 and 20 NFE).
std::function<torch::Tensor(const SamplerCall&)> sigma_row(SigmaFn fn) {
  return [fn](const SamplerCall& c) {
    SigmaModel m(c.denoiser, c.cond, c.clip_x0);
    const double s0 = c.sigmas.front(), top = c.denoiser.sigma_max();
    torch::Tensor x;
    if (c.options.sigma_max > 0.0 && s0 < top * (1.0 - 1e-5)) {
      x = c.x * std::sqrt(1.0 + top * top);
      const torch::Tensor den = m(x, top);
      x = den + (x - den) * (s0 / top);
    } else {
      x = c.x * std::sqrt(1.0 + s0 * s0);
    }
    torch::Tensor out = fn(std::move(x), SigmaArgs{m, c.sigmas, c.options, c.noise, c.callback});
    if (c.nfe) *c.nfe = m.nfe();
    return out;
  };
}

// The keys every sigma row reads (the grid).
std::vector<std::string> grid_keys(std::vector<std::string> more) {
  std::vector<std::string> k = {"sample.schedule",  "sample.spacing", "sample.sigma_min",
                                "sample.sigma_max", "sample.rho",     "sample.clip_x0"};
  k.insert(k.end(), more.begin(), more.end());
  return k;
}

}  // namespace

const std::vector<SamplerEntry>& sampler_table() {
  static const std::vector<SamplerEntry> rows = {
      {"ddpm",
       "ancestral DDPM (Ho et al. 2020 Alg. 2), variance beta or beta-tilde, respaced",
       {"sample.spacing", "sample.variance", "sample.clip_x0"},
       0,
       [](const SamplerCall& c) {
         if (c.nfe) *c.nfe = static_cast<int64_t>(c.timesteps.size());
         return sample_ddpm(c.denoiser, c.x, c.timesteps,
                            ddpm_variance(c.options.variance, c.denoiser.learned_variance()),
                            c.cond, c.noise, c.callback, c.clip_x0);
       }},
      {"ddim",
       "DDIM (Song et al. 2021 eq. 12), eta = 0 deterministic .. eta = 1 DDPM-like",
       {"sample.spacing", "sample.eta", "sample.clip_x0"},
       50,
       [](const SamplerCall& c) {
         if (c.nfe) *c.nfe = static_cast<int64_t>(c.timesteps.size());
         return sample_ddim(c.denoiser, c.x, c.timesteps, c.options.eta, c.cond, c.noise,
                            c.callback, c.clip_x0);
       }},
      {"euler", "Euler on the probability-flow ODE (Karras et al. 2022 Alg. 2; s_churn > 0: SDE)",
       grid_keys({"sample.s_churn", "sample.s_noise", "sample.s_tmin", "sample.s_tmax"}), 50,
       sigma_row(sample_euler), true},
      {"heun", "Heun's 2nd order (Karras et al. 2022 Alg. 2), 2 NFE per step but the last",
       grid_keys(
           {"sample.heun", "sample.s_churn", "sample.s_noise", "sample.s_tmin", "sample.s_tmax"}),
       25, sigma_row(sample_heun), true},
      {"euler_a", "Euler ancestral: Euler to sigma_down, then fresh noise (DDPM-like, eta = 1)",
       grid_keys({"sample.ancestral_eta", "sample.s_noise"}), 50, sigma_row(sample_euler_ancestral),
       true},
      {"lms", "linear multistep (Adams-Bashforth in sigma, order 1-4) on the probability-flow ODE",
       grid_keys({"sample.order"}), 50, sigma_row(sample_lms), true},
      {"dpm++2m", "DPM-Solver++(2M) (Lu et al. 2022 Alg. 2), multistep 2nd order, 1 NFE per step",
       grid_keys({}), 20, sigma_row(sample_dpmpp_2m), true},
      {"dpm++2m_sde", "SDE-DPM-Solver++(2M) (Lu et al. 2022), stochastic multistep 2nd order",
       grid_keys({"sample.ancestral_eta", "sample.s_noise"}), 25, sigma_row(sample_dpmpp_2m_sde),
       true},
      {"dpm++2s_a", "DPM-Solver++(2S) ancestral (Lu et al. 2022 Alg. 1), 2 NFE per step",
       grid_keys({"sample.ancestral_eta", "sample.s_noise"}), 15,
       sigma_row(sample_dpmpp_2s_ancestral), true},
      {"unipc", "UniPC bh2 (Zhao et al. 2023), predictor-corrector multistep, order 1-3",
       grid_keys({"sample.order"}), 20, sigma_row(sample_unipc), true},
      {"pc", "predictor-corrector (Song et al. 2021 Alg. 2): reverse SDE + Langevin at snr",
       grid_keys({"sample.predictor", "sample.snr", "sample.corrector_steps", "sample.s_noise"}),
       1000, sigma_row(sample_pc), true},
      {"langevin",
       "annealed Langevin dynamics (Song & Ermon 2019 Alg. 1), T steps per level, then Tweedie",
       grid_keys({"sample.langevin_steps", "sample.langevin_eps", "sample.s_noise"}), 0,
       sigma_row(sample_langevin), true},
      {"ode",
       "probability-flow ODE with adaptive RK45 (Dormand-Prince), NFE from rtol/atol",
       {"sample.sigma_min", "sample.sigma_max", "sample.rtol", "sample.atol", "sample.clip_x0"},
       0,
       sigma_row(sample_ode),
       true,
       true},
  };
  return rows;
}

const SamplerEntry& find_sampler(const std::string& name) {
  std::string valid;
  for (const auto& row : sampler_table()) {
    if (row.name == name) return row;
    valid += (valid.empty() ? "" : ", ") + row.name;
  }
  throw Error("unknown sampler '" + name + "'; valid: " + valid);
}

std::vector<std::pair<std::string, std::string>> sampler_names() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& row : sampler_table()) out.emplace_back(row.name, row.doc);
  return out;
}

void check_sampler_name(const std::string& name) { find_sampler(name); }

namespace {

// A Conditioning restricted to rows [lo, hi) of the job.
diffusion::Conditioning slice(const diffusion::Conditioning& c, int64_t lo, int64_t hi,
                              const torch::Device& device) {
  diffusion::Conditioning out = c;
  if (c.labels.defined()) out.labels = c.labels.slice(0, lo, hi).to(device);
  if (c.embedding.defined()) out.embedding = c.embedding.slice(0, lo, hi).to(device);
  if (c.null_embedding.defined()) out.null_embedding = c.null_embedding.to(device);
  return out;
}

}  // namespace

Drawn draw_samples(const diffusion::Denoiser& d, const SamplerOptions& o, const SampleJob& job) {
  torch::NoGradGuard no_grad;
  const SamplerEntry& row = find_sampler(o.sampler);
  if (job.n < 1) throw Error("--n must be >= 1, got " + std::to_string(job.n));
  if (o.steps < 0) throw Error("sample.steps must be >= 0 (0 = the sampler's default)");
  const int64_t T = d.schedule().num_steps();
  // The sampler's default never asks for more steps than the model was trained with.
  const int64_t steps = o.steps > 0             ? o.steps
                        : row.default_steps > 0 ? std::min(row.default_steps, T)
                                                : T;
  std::vector<int64_t> timesteps;
  std::vector<double> sigmas;
  if (row.sigma_space) {
    GridOptions g;
    g.grid = row.adaptive ? SigmaGrid::Karras : parse_sigma_grid(o.schedule);
    g.steps = row.adaptive ? 2 : steps;  // adaptive: only the range {sigma_max, sigma_min}
    g.spacing = parse_spacing(o.spacing);
    g.sigma_min = o.sigma_min;
    g.sigma_max = o.sigma_max;
    g.rho = o.rho;
    sigmas = make_sigmas(d, g);
  } else {
    timesteps = respace_timesteps(T, steps, parse_spacing(o.spacing));
  }

  // All starting noise comes from one seeded CPU generator.
  torch::Generator gen = at::detail::createCPUGenerator(job.seed);
  std::vector<int64_t> shape = {job.n};
  shape.insert(shape.end(), job.shape.begin(), job.shape.end());
  torch::Tensor x_T = torch::randn(shape, gen, torch::kFloat32);
  const bool guided = job.cond.labels.defined() || job.cond.embedding.defined();

  std::vector<torch::Tensor> outs;
  int64_t nfe = 0;
  const int64_t batches = (job.n + job.batch - 1) / job.batch;
  // Batches a previous, interrupted run of the same job finished (--keep-batches).
  std::vector<std::optional<BatchCache::Batch>> kept(batches);
  int64_t todo = batches;
  if (job.cache) {
    for (int64_t b = 0; b < batches; ++b) {
      kept[b] = job.cache->load(b * job.batch, std::min(job.n, (b + 1) * job.batch), job.shape);
      if (kept[b]) --todo;
    }
    if (todo < batches && job.progress)
      std::cerr << "genmodels: " << batches - todo << " of " << batches
                << " batches already sampled in " << job.cache->dir() << "; sampling " << todo
                << " more\n";
  }
  int64_t sampled = 0;  // batches sampled here, for the progress
  for (int64_t b = 0; b < batches; ++b) {
    const int64_t lo = b * job.batch, hi = std::min(job.n, lo + job.batch);
    if (kept[b]) {
      outs.push_back(kept[b]->x);
      nfe = std::max(nfe, kept[b]->nfe);
      continue;
    }
    diffusion::Conditioning cond = slice(job.cond, lo, hi, job.device);
    if (guided) cond.guidance = o.guidance;
    int64_t batch_nfe = 0;
    SamplerCall call{d,
                     x_T.slice(0, lo, hi).to(job.device),
                     timesteps,
                     sigmas,
                     o,
                     cond,
                     Noise::per_row(job.seed, lo, hi - lo),
                     {},
                     o.clip_x0 && job.image,
                     &batch_nfe};
    call.callback = [&](int64_t i, int64_t n) {
      if (job.progress) job.progress(sampled * n + i, todo * n);
    };
    outs.push_back(row.run(call).to(torch::kCPU));
    nfe = std::max(nfe, batch_nfe);
    if (job.cache) job.cache->save(lo, hi, {outs.back(), batch_nfe});
    ++sampled;
  }
  Drawn res;
  res.x = torch::cat(outs);
  if (job.image) res.x = res.x.clamp(-1, 1);
  res.nfe = nfe;
  res.params = {{"sampler", row.name},
                {"steps", row.adaptive ? std::string("adaptive") : std::to_string(steps)},
                {"nfe", std::to_string(nfe)},
                {"seed", std::to_string(job.seed)}};
  Config c(sampler_keys().keys());
  sampler_keys().write(o, c, "sample");
  for (const auto& key : row.keys) res.params[key.substr(key.find('.') + 1)] = c.get_string(key);
  if (guided) res.params["guidance"] = c.get_string("sample.guidance");
  if (row.name == "langevin") res.params["langevin_eps"] = num(langevin_eps_for(sigmas, o));
  return res;
}

}  // namespace gm::sampling
