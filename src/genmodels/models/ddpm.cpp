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

class Ddpm : public Model {
 public:
  Ddpm(const Config& c, const DataInfo& info)
      : info_(info),
        schedule_(diffusion::make_schedule(c.get_string("diffusion.schedule"),
                                           c.get_int("diffusion.timesteps"))),
        prediction_(diffusion::parse_prediction(c.get_string("diffusion.prediction"))),
        conditional_(c.get_bool("model.conditional") && info.num_classes() > 0),
        num_classes_(conditional_ ? info.num_classes() : 0),
        class_dropout_(c.get_float("diffusion.class_dropout")),
        default_sampler_(c.get_string("sample.sampler")),
        default_steps_(c.get_int("sample.steps")),
        default_eta_(c.get_float("sample.eta")),
        default_spacing_(c.get_string("sample.spacing")),
        default_variance_(c.get_string("sample.variance")),
        default_guidance_(c.get_float("sample.guidance")),
        clip_x0_(c.get_bool("sample.clip_x0")),
        precision_(nn::parse_precision(c.get_string("model.precision"), "model.precision")) {
    if (info.is_image()) {
      nn::UNetOptions o;
      o.in_channels = o.out_channels = info.shape[0];
      o.base_channels = c.get_int("model.base_channels");
      o.channel_mult = parse_int_list(c.get_string("model.channel_mult"), "model.channel_mult");
      o.num_res_blocks = c.get_int("model.num_res_blocks");
      o.attention_levels =
          parse_int_list(c.get_string("model.attention_levels"), "model.attention_levels");
      o.num_heads = c.get_int("model.heads");
      o.dropout = c.get_float("model.dropout");
      o.scale_shift_norm = c.get_bool("model.scale_shift_norm");
      o.num_classes = num_classes_;
      const int64_t factor = int64_t{1} << (o.channel_mult.size() - 1);
      if (info.shape[1] % factor || info.shape[2] % factor)
        throw Error("model.channel_mult '" + c.get_string("model.channel_mult") + "' downsamples " +
                    std::to_string(o.channel_mult.size() - 1) + " times, but the images are " +
                    std::to_string(info.shape[1]) + "x" + std::to_string(info.shape[2]) +
                    " (not divisible by " + std::to_string(factor) + "); use fewer levels");
      net_->unet = net_->register_module("unet", nn::UNet(o));
    } else {
      nn::TimeMLPOptions o;
      o.dim = o.out_dim = info.shape[0];
      o.hidden = c.get_int("model.mlp_hidden");
      o.depth = c.get_int("model.mlp_depth");
      o.num_classes = num_classes_;
      net_->mlp = net_->register_module("mlp", nn::TimeMLP(o));
    }
    net_->to(torch::Device(c.get_string("device")));
    device_ = torch::Device(c.get_string("device"));
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

  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) override {
    diffusion::LossOptions o;
    o.prediction = prediction_;
    o.class_dropout = conditional_ ? class_dropout_ : 0.0;
    o.null_label = conditional_ ? num_classes_ : -1;
    return diffusion::diffusion_loss(net_fn(), schedule_, x, conditional_ ? y : torch::Tensor(), o);
  }

  SampleResult sample(const SampleRequest& r) override {
    torch::NoGradGuard no_grad;
    const std::string sampler = r.sampler.empty() ? default_sampler_ : r.sampler;
    const int64_t T = schedule_.num_steps();
    int64_t steps = r.steps > 0 ? r.steps : (sampler == "ddpm" ? T : default_steps_);
    const std::string spacing = r.spacing.empty() ? default_spacing_ : r.spacing;
    const std::string variance = r.variance.empty() ? default_variance_ : r.variance;
    const double guidance = r.guidance >= 0 ? r.guidance : default_guidance_;
    const double eta = sampler == "ddim" ? r.eta : 0.0;
    if (r.n < 1) throw Error("--n must be >= 1");
    if (r.class_label >= 0 && !conditional_)
      throw Error(
          "--class " + std::to_string(r.class_label) +
          ": this model is unconditional (train with model.conditional=true on labelled data)");
    if (r.class_label >= num_classes_ && conditional_)
      throw Error("--class " + std::to_string(r.class_label) + " is out of range: classes are 0.." +
                  std::to_string(num_classes_ - 1));
    const auto timesteps = sampling::respace_timesteps(T, steps, sampling::parse_spacing(spacing));
    diffusion::Denoiser denoiser(net_fn(), prediction_, schedule_);

    torch::Generator gen = at::detail::createCPUGenerator(r.seed);
    std::vector<int64_t> shape = {r.n};
    shape.insert(shape.end(), info_.shape.begin(), info_.shape.end());
    // All noise comes from one seeded CPU generator, so results do not depend on the batch size.
    torch::Tensor x_T = torch::randn(shape, gen, torch::kFloat32);
    torch::Tensor labels;
    if (conditional_)
      labels = r.class_label >= 0 ? torch::full({r.n}, r.class_label, torch::kInt64)
                                  : torch::arange(r.n, torch::kInt64).remainder(num_classes_);

    std::vector<torch::Tensor> outs;
    const int64_t batch = 256;
    const int64_t batches = (r.n + batch - 1) / batch;
    for (int64_t b = 0; b < batches; ++b) {
      const int64_t lo = b * batch, hi = std::min(r.n, lo + batch);
      diffusion::Conditioning cond;
      if (conditional_) {
        cond.labels = labels.slice(0, lo, hi).to(device_);
        cond.guidance = guidance;
        cond.null_label = num_classes_;
      }
      auto cb = [&](int64_t i, int64_t n) {
        if (r.progress) r.progress(b * n + i, batches * n);
      };
      torch::Tensor xb = x_T.slice(0, lo, hi).to(device_);
      torch::Generator g = at::detail::createCPUGenerator(r.seed * 1000003 + b + 1);
      const bool clip = clip_x0_ && info_.is_image();
      torch::Tensor out;
      if (sampler == "ddpm")
        out = sampling::sample_ddpm(denoiser, xb, timesteps,
                                    sampling::parse_ddpm_variance(variance), cond, g, cb, clip);
      else if (sampler == "ddim")
        out = sampling::sample_ddim(denoiser, xb, timesteps, eta, cond, g, cb, clip);
      else
        throw Error("unknown --sampler '" + sampler + "'; valid: ddpm, ddim");
      outs.push_back(out.to(torch::kCPU));
    }
    SampleResult res;
    res.x = torch::cat(outs);
    if (info_.is_image()) res.x = res.x.clamp(-1, 1);
    res.labels = labels;
    res.params = {{"sampler", sampler},
                  {"steps", std::to_string(steps)},
                  {"spacing", spacing},
                  {"seed", std::to_string(r.seed)},
                  {"prediction", diffusion::to_string(prediction_)},
                  {"schedule", schedule_.name}};
    if (sampler == "ddim") res.params["eta"] = std::to_string(eta);
    if (sampler == "ddpm") res.params["variance"] = variance;
    if (conditional_) {
      res.params["guidance"] = std::to_string(guidance);
      res.params["class"] = r.class_label >= 0 ? std::to_string(r.class_label) : "all";
    }
    return res;
  }

 private:
  DataInfo info_;
  diffusion::NoiseSchedule schedule_;
  diffusion::Prediction prediction_;
  bool conditional_;
  int64_t num_classes_;
  double class_dropout_;
  std::string default_sampler_;
  int64_t default_steps_;
  double default_eta_;
  std::string default_spacing_, default_variance_;
  double default_guidance_;
  bool clip_x0_;
  nn::Precision precision_;
  DdpmNet net_;
  torch::Device device_ = torch::kCPU;
};

}  // namespace

ModelEntry ddpm_entry() {
  using T = ValueType;
  ModelEntry e;
  e.name = "ddpm";
  e.family = "diffusion";
  e.description =
      "denoising diffusion (Ho et al. 2020), class-conditional with classifier-free guidance";
  e.config_keys = {
      // Defaults: tuned for the README's 15-minute CPU run on Fashion-MNIST.
      {"train.batch_size", T::Int, "64", "examples per step"},
      {"train.lr", T::Float, "1e-3", "peak learning rate"},
      {"train.lr_schedule", T::String, "cosine", "LR after warm-up", {"constant", "cosine"}},
      {"train.lr_min_ratio", T::Float, "0.05", "cosine floor as a fraction of train.lr"},
      {"train.ema_decay", T::Float, "0.995", "EMA decay of the weights"},
      {"model.base_channels", T::Int, "32", "U-Net width of the first level"},
      {"model.channel_mult", T::String, "1,2,2", "U-Net width multipliers per level"},
      {"model.num_res_blocks", T::Int, "1", "residual blocks per level"},
      {"model.attention_levels", T::String, "2", "levels with self-attention (e.g. \"2\" or \"\")"},
      {"model.heads", T::Int, "4", "attention heads"},
      {"model.dropout", T::Float, "0", "dropout in residual blocks"},
      {"model.scale_shift_norm", T::Bool, "true", "AdaGN conditioning (Nichol & Dhariwal 2021)"},
      {"model.precision",
       T::String,
       "fp32",
       "network arithmetic: fp32, or bf16 autocast (CPU)",
       {"fp32", "bf16"}},
      {"model.conditional", T::Bool, "true", "class-conditional (needs labelled data)"},
      {"model.mlp_hidden", T::Int, "256", "2-D toys: MLP width"},
      {"model.mlp_depth", T::Int, "3", "2-D toys: MLP hidden layers"},
      {"diffusion.schedule", T::String, "cosine", "noise schedule", {"linear", "cosine"}},
      {"diffusion.timesteps", T::Int, "1000", "diffusion steps T"},
      {"diffusion.prediction", T::String, "v", "network target", {"eps", "x0", "v"}},
      {"diffusion.class_dropout", T::Float, "0.1", "label dropout for classifier-free guidance"},
      {"sample.sampler", T::String, "ddim", "default sampler", {"ddpm", "ddim"}},
      {"sample.steps", T::Int, "50", "default sampler steps"},
      {"sample.eta", T::Float, "0", "DDIM eta (0 = deterministic)"},
      {"sample.spacing",
       T::String,
       "trailing",
       "timestep respacing",
       {"linspace", "leading", "trailing"}},
      {"sample.variance", T::String, "beta_tilde", "DDPM variance", {"beta", "beta_tilde"}},
      {"sample.guidance", T::Float, "1.0",
       "classifier-free guidance scale (1 = none; 2 sharpens classes but raises FID)"},
      {"sample.clip_x0", T::Bool, "true", "clip predicted x0 to [-1, 1] while sampling images"},
  };
  e.create = [](const Config& c, const DataInfo& info) -> std::unique_ptr<Model> {
    return std::make_unique<Ddpm>(c, info);
  };
  return e;
}

}  // namespace gm
