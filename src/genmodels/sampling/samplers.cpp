// The sampler table and the shared sampling prologue.
#include "genmodels/sampling/samplers.h"

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
    t.add("sample.variance", &O::variance, "DDPM variance", {"beta", "beta_tilde"});
    t.add("sample.guidance", &O::guidance,
          "classifier-free guidance scale (1 = none; 2 sharpens classes but raises FID)");
    t.add("sample.clip_x0", &O::clip_x0, "clip predicted x0 to [-1, 1] while sampling images");
    return t;
  }();
  return table;
}

const std::vector<SamplerEntry>& sampler_table() {
  static const std::vector<SamplerEntry> rows = {
      {"ddpm",
       "ancestral DDPM (Ho et al. 2020 Alg. 2), variance beta or beta-tilde, respaced",
       {"sample.spacing", "sample.variance", "sample.clip_x0"},
       0,
       [](const SamplerCall& c) {
         return sample_ddpm(c.denoiser, c.x, c.timesteps, parse_ddpm_variance(c.options.variance),
                            c.cond, c.gen, c.callback, c.clip_x0);
       }},
      {"ddim",
       "DDIM (Song et al. 2021 eq. 12), eta = 0 deterministic .. eta = 1 DDPM-like",
       {"sample.spacing", "sample.eta", "sample.clip_x0"},
       50,
       [](const SamplerCall& c) {
         return sample_ddim(c.denoiser, c.x, c.timesteps, c.options.eta, c.cond, c.gen, c.callback,
                            c.clip_x0);
       }},
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
  const int64_t steps = o.steps > 0 ? o.steps : row.default_steps > 0 ? row.default_steps : T;
  const auto timesteps = respace_timesteps(T, steps, parse_spacing(o.spacing));

  // All starting noise comes from one seeded CPU generator.
  torch::Generator gen = at::detail::createCPUGenerator(job.seed);
  std::vector<int64_t> shape = {job.n};
  shape.insert(shape.end(), job.shape.begin(), job.shape.end());
  torch::Tensor x_T = torch::randn(shape, gen, torch::kFloat32);
  const bool guided = job.cond.labels.defined() || job.cond.embedding.defined();

  std::vector<torch::Tensor> outs;
  const int64_t batches = (job.n + job.batch - 1) / job.batch;
  for (int64_t b = 0; b < batches; ++b) {
    const int64_t lo = b * job.batch, hi = std::min(job.n, lo + job.batch);
    diffusion::Conditioning cond = slice(job.cond, lo, hi, job.device);
    if (guided) cond.guidance = o.guidance;
    SamplerCall call{d,         x_T.slice(0, lo, hi).to(job.device),
                     timesteps, o,
                     cond,      at::detail::createCPUGenerator(job.seed * 1000003 + b + 1),
                     {},        o.clip_x0 && job.image};
    call.callback = [&](int64_t i, int64_t n) {
      if (job.progress) job.progress(b * n + i, batches * n);
    };
    outs.push_back(row.run(call).to(torch::kCPU));
  }
  Drawn res;
  res.x = torch::cat(outs);
  if (job.image) res.x = res.x.clamp(-1, 1);
  res.params = {
      {"sampler", row.name}, {"steps", std::to_string(steps)}, {"seed", std::to_string(job.seed)}};
  Config c(sampler_keys().keys());
  sampler_keys().write(o, c, "sample");
  for (const auto& key : row.keys) res.params[key.substr(key.find('.') + 1)] = c.get_string(key);
  if (guided) res.params["guidance"] = c.get_string("sample.guidance");
  return res;
}

}  // namespace gm::sampling
