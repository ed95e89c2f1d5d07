#include "genmodels/models/ddpm.h"

#include <sstream>

#include "genmodels/core/error.h"
#include "genmodels/diffusion/denoiser.h"
#include "genmodels/diffusion/loss.h"
#include "genmodels/diffusion/schedule.h"
#include "genmodels/nn/precision.h"
#include "genmodels/nn/unet.h"
#include "genmodels/sampling/samplers.h"

namespace gm {

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& key) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.find_first_not_of(" ") == std::string::npos) continue;
    try {
      size_t used = 0;
      out.push_back(std::stoll(item, &used));
      if (item.find_first_not_of(" ", used) != std::string::npos) throw std::invalid_argument("");
    } catch (const std::exception&) {
      throw Error(key + " = '" + text + "': expected comma-separated integers, e.g. \"1,2,2\"");
    }
  }
  return out;
}

namespace {

// Holds whichever network the data calls for, registered as "net" for checkpoints.
struct DdpmNetImpl : torch::nn::Module {
  nn::UNet unet{nullptr};
  nn::TimeMLP mlp{nullptr};
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) {
    return unet ? unet->forward(x, t, y) : mlp->forward(x, t, y);
  }
};
TORCH_MODULE(DdpmNet);

// The model.* and diffusion.* settings of `ddpm`, bound to their keys by ddpm_keys().
struct DdpmOptions {
  int64_t base_channels = 32;          ///< model.base_channels
  std::string channel_mult = "1,2,2";  ///< model.channel_mult
  int64_t num_res_blocks = 1;          ///< model.num_res_blocks
  std::string attention_levels = "2";  ///< model.attention_levels
  int64_t heads = 4;                   ///< model.heads
  double dropout = 0.0;                ///< model.dropout
  bool scale_shift_norm = true;        ///< model.scale_shift_norm
  std::string precision = "fp32";      ///< model.precision
  bool conditional = true;             ///< model.conditional
  int64_t mlp_hidden = 256;            ///< model.mlp_hidden
  int64_t mlp_depth = 3;               ///< model.mlp_depth
  std::string schedule = "cosine";     ///< diffusion.schedule
  int64_t timesteps = 1000;            ///< diffusion.timesteps
  std::string prediction = "v";        ///< diffusion.prediction
  double class_dropout = 0.1;          ///< diffusion.class_dropout
};

const KeyTable<DdpmOptions>& ddpm_keys() {
  using O = DdpmOptions;
  static const KeyTable<O> table = [] {
    KeyTable<O> t;
    t.add("model.base_channels", &O::base_channels, "U-Net width of the first level");
    t.add("model.channel_mult", &O::channel_mult, "U-Net width multipliers per level");
    t.add("model.num_res_blocks", &O::num_res_blocks, "residual blocks per level");
    t.add("model.attention_levels", &O::attention_levels,
          "levels with self-attention (e.g. \"2\" or \"\")");
    t.add("model.heads", &O::heads, "attention heads");
    t.add("model.dropout", &O::dropout, "dropout in residual blocks");
    t.add("model.scale_shift_norm", &O::scale_shift_norm,
          "AdaGN conditioning (Nichol & Dhariwal 2021)");
    t.add("model.precision", &O::precision, "network arithmetic: fp32, or bf16 autocast (CPU)",
          {"fp32", "bf16"});
    t.add("model.conditional", &O::conditional, "class-conditional (needs labelled data)");
    t.add("model.mlp_hidden", &O::mlp_hidden, "2-D toys: MLP width");
    t.add("model.mlp_depth", &O::mlp_depth, "2-D toys: MLP hidden layers");
    t.add("diffusion.schedule", &O::schedule, "noise schedule", {"linear", "cosine"});
    t.add("diffusion.timesteps", &O::timesteps, "diffusion steps T");
    t.add("diffusion.prediction", &O::prediction, "network target", {"eps", "x0", "v"});
    t.add("diffusion.class_dropout", &O::class_dropout,
          "label dropout for classifier-free guidance");
    return t;
  }();
  return table;
}

class Ddpm : public Model {
 public:
  Ddpm(const Config& c, const DataInfo& info)
      : info_(info),
        o_(ddpm_keys().read(c)),
        sample_(sampling::sampler_keys().read(c)),
        schedule_(diffusion::make_schedule(o_.schedule, o_.timesteps)),
        prediction_(diffusion::parse_prediction(o_.prediction)),
        conditional_(o_.conditional && info.num_classes() > 0),
        num_classes_(conditional_ ? info.num_classes() : 0),
        precision_(nn::parse_precision(o_.precision, "model.precision")),
        device_(c.get_string("device")) {
    if (info.is_image()) {
      nn::UNetOptions u;
      u.in_channels = u.out_channels = info.shape[0];
      u.base_channels = o_.base_channels;
      u.channel_mult = parse_int_list(o_.channel_mult, "model.channel_mult");
      u.num_res_blocks = o_.num_res_blocks;
      u.attention_levels = parse_int_list(o_.attention_levels, "model.attention_levels");
      u.num_heads = o_.heads;
      u.dropout = o_.dropout;
      u.scale_shift_norm = o_.scale_shift_norm;
      u.num_classes = num_classes_;
      const int64_t factor = int64_t{1} << (u.channel_mult.size() - 1);
      if (info.shape[1] % factor || info.shape[2] % factor)
        throw Error("model.channel_mult '" + o_.channel_mult + "' downsamples " +
                    std::to_string(u.channel_mult.size() - 1) + " times, but the images are " +
                    std::to_string(info.shape[1]) + "x" + std::to_string(info.shape[2]) +
                    " (not divisible by " + std::to_string(factor) + "); use fewer levels");
      net_->unet = net_->register_module("unet", nn::UNet(u));
    } else {
      nn::TimeMLPOptions m;
      m.dim = m.out_dim = info.shape[0];
      m.hidden = o_.mlp_hidden;
      m.depth = o_.mlp_depth;
      m.num_classes = num_classes_;
      net_->mlp = net_->register_module("mlp", nn::TimeMLP(m));
    }
    net_->to(device_);
  }

  torch::nn::Module& module() override { return *net_; }

  // The network as the diffusion code calls it; under bf16 the output is returned as fp32.
  diffusion::NetFn net_fn() {
    DdpmNet net = net_;
    const nn::Precision precision = precision_;
    return [net, precision](const torch::Tensor& x, const torch::Tensor& t,
                            const torch::Tensor& y) mutable {
      nn::AutocastScope autocast(precision);
      return net->forward(x, t, y).to(torch::kFloat);
    };
  }

  // The simple loss (diffusion/loss.h), minimised by the default train step.
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) override {
    diffusion::LossOptions lo;
    lo.prediction = prediction_;
    lo.class_dropout = conditional_ ? o_.class_dropout : 0.0;
    lo.null_label = conditional_ ? num_classes_ : -1;
    return diffusion::diffusion_loss(net_fn(), schedule_, x, conditional_ ? y : torch::Tensor(),
                                     lo);
  }

  SampleResult sample(const SampleRequest& r) override {
    diffusion::Denoiser denoiser(net_fn(), prediction_, schedule_);
    sampling::SampleJob job;
    job.shape = info_.shape;
    job.n = r.n;
    job.seed = r.seed;
    job.image = info_.is_image();
    job.device = device_;
    job.progress = r.progress;
    SampleResult res;
    res.labels = request_labels(r, num_classes_, conditional_);
    if (conditional_) {
      job.cond.labels = res.labels;
      job.cond.null_label = num_classes_;
    }
    sampling::Drawn drawn = sampling::draw_samples(denoiser, sample_, job);
    res.x = drawn.x;
    res.params = drawn.params;
    res.params["prediction"] = diffusion::to_string(prediction_);
    res.params["noise_schedule"] = schedule_.name;
    if (conditional_)
      res.params["class"] = r.class_label >= 0 ? std::to_string(r.class_label) : "all";
    return res;
  }

 private:
  DataInfo info_;
  DdpmOptions o_;
  sampling::SamplerOptions sample_;
  diffusion::NoiseSchedule schedule_;
  diffusion::Prediction prediction_;
  bool conditional_;
  int64_t num_classes_;
  nn::Precision precision_;
  torch::Device device_;
  DdpmNet net_;
};

}  // namespace

std::vector<ModelEntry> ddpm_entries() {
  ModelEntry e;
  e.name = "ddpm";
  e.family = "diffusion";
  e.description =
      "denoising diffusion (Ho et al. 2020), class-conditional with classifier-free guidance";
  e.config_keys = ddpm_keys().keys();
  for (const auto& k : sampling::sampler_keys().keys()) e.config_keys.push_back(k);
  // Tuned for the README's 15-minute CPU run on Fashion-MNIST.
  e.defaults = {{"train.batch_size", "64"},
                {"train.lr", "1e-3"},
                {"train.lr_schedule", "cosine"},
                {"train.lr_min_ratio", "0.05"},
                {"train.ema_decay", "0.995"}};
  e.create = [](const Config& c, const DataInfo& info) -> std::unique_ptr<Model> {
    return std::make_unique<Ddpm>(c, info);
  };
  return {e};
}

}  // namespace gm
