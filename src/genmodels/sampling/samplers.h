// The sampler table: one row per sampler (name, one-line doc, the sample.* keys it reads, its
// default step count, and the call of its free function). Model dispatch, the sample.sampler
// choices, `genmodels list` and `--help` all read this table. Adding a sampler is one file with
// its free function (like ddim.cpp) plus one row in samplers.cpp.
//
// draw_samples() is the prologue every sampler shares: checks, seeded x_T from one CPU
// generator, step noise from one stream per sample (so a sample depends on the seed and its
// index only, never on the batch size), the timestep or sigma grid, classifier-free guidance
// set-up, progress and the NFE count.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "genmodels/core/options.h"
#include "genmodels/diffusion/denoiser.h"
#include "genmodels/sampling/batch_cache.h"
#include "genmodels/sampling/ddim.h"
#include "genmodels/sampling/ddpm.h"
#include "genmodels/sampling/sampler_options.h"
#include "genmodels/sampling/sigma_samplers.h"
#include "genmodels/sampling/timesteps.h"

namespace gm::sampling {

/// sample.* keys bound to SamplerOptions (sampling/sampler_options.h).
const KeyTable<SamplerOptions>& sampler_keys();

/// What the prologue hands a sampler for one batch.
struct SamplerCall {
  const diffusion::Denoiser& denoiser;
  torch::Tensor x;                 ///< x_T of the batch (unit variance, on the device)
  std::vector<int64_t> timesteps;  ///< timestep rows (ddpm, ddim): the descending grid
  std::vector<double> sigmas;      ///< sigma rows: the descending grid, ending with 0
  const SamplerOptions& options;
  const diffusion::Conditioning& cond;
  Noise noise;            ///< the batch's step noise: one stream per sample (sampling/noise.h)
  StepCallback callback;  ///< (steps done, steps) of the batch
  bool clip_x0 = false;
  int64_t* nfe = nullptr;  ///< the row stores the network evaluations it made here
};

struct SamplerEntry {
  std::string name;               ///< "ddim"
  std::string doc;                ///< one line for `genmodels list` and --help
  std::vector<std::string> keys;  ///< sample.* keys it reads beyond sampler, steps, guidance
  int64_t default_steps = 0;      ///< steps when sample.steps = 0 (0 = every model timestep)
  std::function<torch::Tensor(const SamplerCall&)> run;
  bool sigma_space = false;  ///< steps over SamplerCall::sigmas (else ::timesteps)
  bool adaptive = false;     ///< chooses its own steps (ode): the grid gives only its range
};

const std::vector<SamplerEntry>& sampler_table();
/// The row named `name`; the error lists the valid names.
const SamplerEntry& find_sampler(const std::string& name);
/// {name, doc} of every row.
std::vector<std::pair<std::string, std::string>> sampler_names();
/// Throws gm::Error listing the valid sampler names unless `name` is one of them.
void check_sampler_name(const std::string& name);

/// One sampling job of the prologue.
struct SampleJob {
  std::vector<int64_t> shape;  ///< one example: {C, H, W} or {D}
  int64_t n = 64;
  uint64_t seed = 0;
  diffusion::Conditioning cond;  ///< labels/embedding for all n (sliced per batch), null values
  bool image = true;             ///< clip x0 and the output to [-1, 1] (with options.clip_x0)
  torch::Device device = torch::kCPU;
  int64_t batch = 256;
  /// (done, total) steps over the batches sampled here (batches found in `cache` are not counted)
  std::function<void(int64_t, int64_t)> progress;
  /// Keeps each finished batch and takes the ones already there (batch_cache.h); null = none.
  std::shared_ptr<const BatchCache> cache;
};

struct Drawn {
  torch::Tensor x;                            ///< N x shape, on the CPU
  std::map<std::string, std::string> params;  ///< sampler, steps, nfe and every key it read
  int64_t nfe = 0;  ///< network evaluations per sample (the largest over batches)
};

/// Runs the sampler named by `options` over `job` (see the file comment).
Drawn draw_samples(const diffusion::Denoiser& d, const SamplerOptions& options,
                   const SampleJob& job);

}  // namespace gm::sampling
