// The sampler table: one row per sampler (name, one-line doc, the sample.* keys it reads, its
// default step count, and the call of its free function). Model dispatch, the sample.sampler
// choices, `genmodels list` and `--help` all read this table. Adding a sampler is one file with
// its free function (like ddim.cpp) plus one row in samplers.cpp.
//
// draw_samples() is the prologue every sampler shares: checks, seeded x_T from one CPU
// generator (results do not depend on the batch size), batches with their own noise generators,
// the timestep grid, classifier-free guidance set-up and progress.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "genmodels/core/options.h"
#include "genmodels/diffusion/denoiser.h"
#include "genmodels/sampling/ddim.h"
#include "genmodels/sampling/ddpm.h"
#include "genmodels/sampling/timesteps.h"

namespace gm::sampling {

/// The sample.* settings of diffusion sampling; bound to their keys by sampler_keys(). Stored in
/// the run at training time, overridable at sample time (--set sample.KEY=V or the CLI flags).
struct SamplerOptions {
  std::string sampler = "ddim";         ///< sample.sampler: a row of sampler_table()
  int64_t steps = 0;                    ///< sample.steps: 0 = the sampler's default
  double eta = 0.0;                     ///< sample.eta: DDIM noise (0 deterministic, 1 DDPM-like)
  std::string spacing = "trailing";     ///< sample.spacing: linspace | leading | trailing
  std::string variance = "beta_tilde";  ///< sample.variance: DDPM beta | beta_tilde
  double guidance = 1.0;                ///< sample.guidance: classifier-free guidance scale
  bool clip_x0 = true;                  ///< sample.clip_x0: clip predicted x0 (images only)
};
const KeyTable<SamplerOptions>& sampler_keys();

/// What the prologue hands a sampler for one batch.
struct SamplerCall {
  const diffusion::Denoiser& denoiser;
  torch::Tensor x;                 ///< x_T of the batch (on the device)
  std::vector<int64_t> timesteps;  ///< descending grid (steps and spacing applied)
  const SamplerOptions& options;
  const diffusion::Conditioning& cond;
  torch::Generator gen;                            ///< the batch's noise generator
  std::function<void(int64_t, int64_t)> callback;  ///< (steps done, steps) of the batch
  bool clip_x0 = false;
};

struct SamplerEntry {
  std::string name;               ///< "ddim"
  std::string doc;                ///< one line for `genmodels list` and --help
  std::vector<std::string> keys;  ///< sample.* keys it reads beyond sampler, steps, guidance
  int64_t default_steps = 0;      ///< steps when sample.steps = 0 (0 = every model timestep)
  std::function<torch::Tensor(const SamplerCall&)> run;
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
  std::function<void(int64_t, int64_t)> progress;  ///< (done, total) over all batches
};

struct Drawn {
  torch::Tensor x;                            ///< N x shape, on the CPU
  std::map<std::string, std::string> params;  ///< sampler, steps and every key it read
};

/// Runs the sampler named by `options` over `job` (see the file comment).
Drawn draw_samples(const diffusion::Denoiser& d, const SamplerOptions& options,
                   const SampleJob& job);

}  // namespace gm::sampling
