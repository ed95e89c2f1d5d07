// What `ddpm`, `ncsn` and `sde` share: the noise-conditional network (the U-Net for images, a time
// MLP for 2-D toys; model.* keys), class conditioning with a null class for classifier-free
// guidance, sampling through the sampler table, and the exact likelihood through the
// probability-flow ODE (likelihood.h). A model adds its noise process: the schedule the
// denoiser() wraps (which makes every sampler work with it) and its training loss.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "genmodels/diffusion/denoiser.h"
#include "genmodels/family/model.h"
#include "genmodels/nn/precision.h"
#include "genmodels/nn/unet.h"
#include "genmodels/sampling/samplers.h"

namespace gm {

/// Parses "1,2,2" into {1, 2, 2}; `key` names the setting in the error.
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& key);

namespace score {

/// The model.* keys of the network.
struct NetOptions {
  int64_t base_channels = 32;          ///< model.base_channels
  std::string channel_mult = "1,2,2";  ///< model.channel_mult
  int64_t num_res_blocks = 1;          ///< model.num_res_blocks
  std::string attention_levels = "2";  ///< model.attention_levels
  int64_t heads = 4;                   ///< model.heads
  double dropout = 0.0;                ///< model.dropout
  bool scale_shift_norm = true;        ///< model.scale_shift_norm
  std::string precision = "fp32";      ///< model.precision
  std::string memory_format = "auto";  ///< model.memory_format
  bool conditional = true;             ///< model.conditional
  int64_t mlp_hidden = 256;            ///< model.mlp_hidden
  int64_t mlp_depth = 3;               ///< model.mlp_depth
};
const KeyTable<NetOptions>& net_keys();

/// Holds whichever network the data calls for, registered as "net" for checkpoints.
struct DenoiserNetImpl : torch::nn::Module {
  nn::UNet unet{nullptr};
  nn::TimeMLP mlp{nullptr};
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) {
    return unet ? unet->forward(x, t, y) : mlp->forward(x, t, y);
  }
};
TORCH_MODULE(DenoiserNet);

class DenoiserModel : public Model {
 public:
  /// out_factor: network output channels per data channel (2 for learned variances); cond_dim
  /// > 0: the U-Net takes a float N x cond_dim embedding (text features) instead of classes.
  DenoiserModel(const Config& c, const DataInfo& info, int64_t out_factor = 1,
                int64_t cond_dim = 0);
  torch::nn::Module& module() override { return *net_; }
  SampleResult sample(const SampleRequest& r) override;
  /// The probability-flow ODE likelihood (likelihood.h) of the unconditional model (the null
  /// class of a conditional one) on uniformly dequantised test images, in bits/dim under
  /// metrics/bits_per_dim.h; k draws of dequantisation noise and probe per image (default 1).
  Json test_likelihood(const data::Dataset& test, int64_t n, int64_t k, uint64_t seed) override;

 protected:
  /// The network wrapped with this model's schedule and parameterisation.
  virtual diffusion::Denoiser denoiser() = 0;
  /// What a sample request is conditioned on: sets job.cond and res.labels (and params). The
  /// default draws the requested class (or every class in turn) of a class-conditional model,
  /// and its null class under gradient guidance without a requested class.
  virtual void condition(const SampleRequest& r, sampling::SampleJob& job, SampleResult& res);
  /// The raw network as the diffusion code calls it; under bf16 the output is returned as fp32.
  diffusion::NetFn net_fn();
  /// Labels for the loss (undefined when unconditional), and the CFG dropout / null label.
  torch::Tensor train_labels(const torch::Tensor& y) const {
    return conditional_ ? y : torch::Tensor();
  }
  int64_t null_label() const { return conditional_ ? num_classes_ : -1; }

  DataInfo info_;
  NetOptions net_o_;
  sampling::SamplerOptions sample_;
  bool conditional_;
  int64_t num_classes_;
  nn::Precision precision_;
  torch::Device device_;
  DenoiserNet net_;
};

/// The train.* defaults of every denoiser model (the README's 15-minute CPU recipe of ddpm) plus
/// a model's own `more` (e.g. its default sampler).
std::map<std::string, std::string> denoiser_model_defaults(
    std::map<std::string, std::string> more = {});

/// The sampler keys every denoiser model lists after its own.
std::vector<ConfigKey> denoiser_model_keys(std::vector<ConfigKey> own);

}  // namespace score
}  // namespace gm
