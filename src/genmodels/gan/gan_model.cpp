#include "genmodels/gan/gan_model.h"

#include "genmodels/core/error.h"
#include "genmodels/gan/dcgan.h"
#include "genmodels/gan/freeze.h"
#include "genmodels/gan/losses.h"
#include "genmodels/nn/layout.h"
#include "genmodels/nn/precision.h"

namespace gm {
namespace {

// The model.* and sample.* settings of the GANs, bound by gan_keys().
struct GanSettings {
  std::string loss = "ns";             ///< model.loss
  int64_t n_critic = 1;                ///< model.n_critic
  double gp_lambda = 0.0;              ///< model.gp_lambda
  double r1_gamma = 0.0;               ///< model.r1_gamma
  bool spectral_norm = true;           ///< model.spectral_norm
  int64_t latent = 0;                  ///< model.latent (0 = 64 for images, 8 for vectors)
  int64_t g_channels = 64;             ///< model.g_channels
  int64_t d_channels = 64;             ///< model.d_channels
  int64_t mlp_hidden = 128;            ///< model.mlp_hidden
  int64_t mlp_depth = 3;               ///< model.mlp_depth
  bool conditional = true;             ///< model.conditional
  double d_lr = 0.0;                   ///< model.d_lr (0 = train.lr)
  std::string precision = "fp32";      ///< model.precision
  std::string memory_format = "nchw";  ///< model.memory_format
  double truncation = 0.0;             ///< sample.truncation

  static GanSettings defaults(const std::string& name) {
    GanSettings s;
    if (name == "wgan-gp") {  // Gulrajani et al. 2017, Alg. 1
      s.loss = "wgan";
      s.n_critic = 5;
      s.gp_lambda = -1.0;  // auto: 10 for images, 0.1 for vectors
      s.spectral_norm = false;
    }
    return s;
  }
};

KeyTable<GanSettings> gan_keys() {
  using O = GanSettings;
  KeyTable<O> t;
  t.add("model.loss", &O::loss,
        "ns (non-saturating), hinge, lsgan (least squares) or wgan (Wasserstein; use with "
        "model.gp_lambda)",
        gan::loss_names());
  t.add("model.n_critic", &O::n_critic, "discriminator steps per generator step");
  t.add("model.gp_lambda", &O::gp_lambda,
        "gradient penalty weight (Gulrajani et al. 2017; 0 = off)");
  t.add("model.r1_gamma", &O::r1_gamma,
        "R1 penalty weight on real data (Mescheder et al. 2018; 0 = off)");
  t.add("model.spectral_norm", &O::spectral_norm,
        "spectral normalisation of D (Miyato et al. 2018)");
  t.add("model.latent", &O::latent, "latent dimensions (0 = 64 for images, 8 for vectors)");
  t.add("model.g_channels", &O::g_channels, "generator width at full resolution (x2 per level)");
  t.add("model.d_channels", &O::d_channels,
        "discriminator width at the first level (x2 per level)");
  t.add("model.mlp_hidden", &O::mlp_hidden, "vectors: MLP width");
  t.add("model.mlp_depth", &O::mlp_depth, "vectors: MLP hidden layers");
  t.add("model.conditional", &O::conditional, "class-conditional (needs labelled data)");
  t.add("model.d_lr", &O::d_lr, "discriminator learning rate (TTUR; 0 = train.lr)");
  t.add("model.precision", &O::precision, nn::kPrecisionHelp, nn::precision_choices());
  t.add("model.memory_format", &O::memory_format,
        "images: D's convolutions and G's upsamplers channels_last (NHWC), nchw, or auto "
        "(channels_last on CPU, nchw elsewhere)",
        {"auto", "nchw", "channels_last"});
  t.add("sample.truncation", &O::truncation,
        "truncation trick: resample latents with |z| > t (0 = off; Brock et al. 2019)");
  return t;
}

struct GanNetImpl : torch::nn::Module {
  explicit GanNetImpl(const gan::NetOptions& o)
      : g(register_module("g", gan::Generator(o))),
        d(register_module("d", gan::Discriminator(o))) {}
  gan::Generator g;
  gan::Discriminator d;
};
TORCH_MODULE(GanNet);

class GanModel : public Model {
 public:
  GanModel(const std::string& name, const Config& c, const DataInfo& info)
      : info_(info), net_(nullptr) {
    s_ = GanSettings::defaults(name);
    gan_keys().read_into(c, s_);
    loss_ = gan::parse_loss(s_.loss);
    if (s_.n_critic < 1)
      throw Error("model.n_critic must be >= 1, got " + std::to_string(s_.n_critic));
    if (s_.gp_lambda == -1.0) s_.gp_lambda = info.is_image() ? 10.0 : 0.1;
    if (s_.gp_lambda < 0 || s_.r1_gamma < 0 || s_.d_lr < 0 || s_.truncation < 0)
      throw Error("model.gp_lambda, model.r1_gamma, model.d_lr and sample.truncation must be >= 0");
    bf16_ = nn::parse_precision(s_.precision, "model.precision") == nn::Precision::Bf16;
    conditional_ = s_.conditional && info.num_classes() > 0;
    gan::NetOptions o;
    o.shape = info.shape;
    o.latent = s_.latent > 0 ? s_.latent : (info.is_image() ? 64 : 8);
    o.num_classes = conditional_ ? info.num_classes() : 0;
    o.g_channels = s_.g_channels;
    o.d_channels = s_.d_channels;
    o.mlp_hidden = s_.mlp_hidden;
    o.mlp_depth = s_.mlp_depth;
    o.spectral_norm = s_.spectral_norm;
    o.channels_last =
        info.is_image() &&
        nn::channels_last_for(s_.memory_format, torch::Device(c.get_string("device")));
    latent_ = o.latent;
    net_ = GanNet(o);
    net_->to(torch::Device(c.get_string("device")));
  }

  torch::nn::Module& module() override { return *net_; }

  std::vector<train::OptimizerSpec> optimizers(const train::OptimizerOptions& main) override {
    train::OptimizerOptions g = main, d = main;
    if (s_.d_lr > 0) d.lr.lr = s_.d_lr;
    g.bf16 = d.bf16 = bf16_;
    return {{"g", net_->g->parameters(), g}, {"d", net_->d->parameters(), d}};
  }

  std::vector<train::EmaSpec> ema_targets() override { return {{"g", net_->g.get()}}; }

  // n_critic discriminator steps (each on its own batch), then one generator step; fakes are
  // drawn for the real batch's labels.
  void train_step(const data::Batcher::Batch& batch, train::StepContext& ctx) override {
    const int64_t n = batch.x.size(0);
    for (int64_t i = 0; i < s_.n_critic; ++i) {
      const data::Batcher::Batch b = i == 0 ? batch : ctx.next_batch();
      const torch::Tensor y = conditional_ ? b.y : torch::Tensor();
      torch::Tensor fake;
      {
        torch::NoGradGuard no_grad;
        auto scope = ctx.autocast("g");
        fake = net_->g->forward(torch::randn({n, latent_}, b.x.options()), y).to(torch::kFloat);
      }
      torch::Tensor real = b.x;
      if (s_.r1_gamma > 0) real = real.detach().requires_grad_(true);
      torch::Tensor d_real, d_fake;
      {
        auto scope = ctx.autocast("d");
        d_real = net_->d->forward(real, y).to(torch::kFloat);
        d_fake = net_->d->forward(fake, y).to(torch::kFloat);
      }
      torch::Tensor loss = gan::discriminator_loss(loss_, d_real, d_fake);
      if (s_.gp_lambda > 0) {
        const torch::Tensor gp = gan::gradient_penalty(
            [&](const torch::Tensor& x) { return net_->d->forward(x, y); }, real, fake);
        loss = loss + s_.gp_lambda * gp;
        ctx.log("gp", gp.item<double>());
      }
      if (s_.r1_gamma > 0) {
        const torch::Tensor r1 = gan::r1_penalty(d_real, real);
        loss = loss + 0.5 * s_.r1_gamma * r1;
        ctx.log("r1", r1.item<double>());
      }
      ctx.minimize("d", loss);
      // D(real) / D(fake): probabilities for the non-saturating loss, raw scores otherwise.
      const bool prob = loss_ == gan::Loss::NonSaturating;
      ctx.log("d_real", (prob ? torch::sigmoid(d_real) : d_real).mean().item<double>());
      ctx.log("d_fake", (prob ? torch::sigmoid(d_fake) : d_fake).mean().item<double>());
    }
    const torch::Tensor y = conditional_ ? batch.y : torch::Tensor();
    // D's weights get no gradient from the generator step (the next D step would zero it): its
    // backward stops at the input gradient, a third less work through D.
    gan::FreezeScope frozen(*net_->d);
    torch::Tensor d_fake;
    {
      auto scope = ctx.autocast("g");
      torch::Tensor fake = net_->g->forward(torch::randn({n, latent_}, batch.x.options()), y);
      auto d_scope = ctx.autocast("d");
      d_fake = net_->d->forward(fake, y).to(torch::kFloat);
    }
    ctx.minimize("g", gan::generator_loss(loss_, d_fake));
  }

  SampleResult sample(const SampleRequest& req) override {
    torch::NoGradGuard no_grad;
    SampleResult res;
    res.labels = request_labels(req, info_.num_classes(), conditional_);
    at::Generator gen = at::detail::createCPUGenerator(req.seed);
    torch::Tensor z = at::randn({req.n, latent_}, gen, torch::kFloat32);
    if (s_.truncation > 0) {
      // Brock et al. 2019, Sec. 3.1: resample the entries outside [-t, t].
      for (torch::Tensor out = z.abs() > s_.truncation; out.any().item<bool>();
           out = z.abs() > s_.truncation)
        z = torch::where(out, at::randn(z.sizes(), gen, torch::kFloat32), z);
    }
    const torch::Device device = net_->g->parameters().front().device();
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < req.n; i += 500) {
      const int64_t b = std::min<int64_t>(500, req.n - i);
      torch::Tensor y =
          res.labels.defined() ? res.labels.narrow(0, i, b).to(device) : torch::Tensor();
      nn::AutocastScope scope(bf16_ ? nn::Precision::Bf16 : nn::Precision::Fp32);
      parts.push_back(net_->g->forward(z.narrow(0, i, b).to(device), y).to(torch::kFloat).cpu());
      if (req.progress) req.progress(i + b, req.n);
    }
    res.x = torch::cat(parts);
    if (info_.is_image()) res.x = res.x.clamp(-1, 1);
    res.params = {{"seed", std::to_string(req.seed)},
                  {"truncation", format_float(s_.truncation)},
                  {"loss", s_.loss}};
    if (conditional_)
      res.params["class"] = req.class_label >= 0 ? std::to_string(req.class_label) : "all";
    return res;
  }

 private:
  DataInfo info_;
  GanSettings s_;
  gan::Loss loss_ = gan::Loss::NonSaturating;
  bool bf16_ = false, conditional_ = false;
  int64_t latent_ = 64;
  GanNet net_;
};

}  // namespace

std::vector<ModelEntry> gan_entries() {
  std::vector<ModelEntry> out;
  for (const std::string name : {"dcgan", "wgan-gp"}) {
    ModelEntry e;
    e.name = name;
    e.family = "implicit";
    e.description = name == "dcgan"
                        ? "DCGAN (Radford et al. 2016): non-saturating loss, spectral norm in D, "
                          "class-conditional (CBN + projection D)"
                        : "WGAN-GP (Gulrajani et al. 2017): Wasserstein critic with gradient "
                          "penalty, n_critic = 5";
    e.config_keys = gan_keys().keys(GanSettings::defaults(name));
    // Radford et al. 2016: Adam(2e-4, beta1 0.5); Gulrajani et al. 2017: Adam(1e-4, 0, 0.9).
    e.defaults = {{"train.batch_size", "64"},
                  {"train.lr", name == "dcgan" ? "2e-4" : "1e-4"},
                  {"train.beta1", name == "dcgan" ? "0.5" : "0"},
                  {"train.beta2", name == "dcgan" ? "0.999" : "0.9"},
                  {"train.warmup_steps", "0"},
                  {"train.grad_clip", "0"},
                  {"train.ema_decay", "0.999"},
                  {"train.eval_every", "1000"}};
    e.create = [name](const Config& c, const DataInfo& info) -> std::unique_ptr<Model> {
      return std::make_unique<GanModel>(name, c, info);
    };
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace gm
