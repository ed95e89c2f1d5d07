#include "genmodels/flow/flow_model.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <mutex>

#include "genmodels/core/error.h"
#include "genmodels/core/progress.h"
#include "genmodels/flow/dequantizer.h"
#include "genmodels/flow/flow.h"
#include "genmodels/io/image.h"
#include "genmodels/io/plot.h"
#include "genmodels/metrics/bits_per_dim.h"
#include "genmodels/nn/layout.h"
#include "genmodels/nn/precision.h"

namespace gm {

namespace {

constexpr double kLog256 = 5.545177444479562;  // log(256)

// 8-bit level k of an image value x = k / 127.5 - 1 (the data loader's convention).
torch::Tensor levels_of(const torch::Tensor& x) {
  return torch::round((x + 1.0) * 127.5).clamp(0, 255);
}

// The model.* and sample.* settings of `realnvp` and `glow`, bound by flow_keys().
struct FlowSettings {
  int64_t levels = 0;                   ///< model.levels
  int64_t steps = 0;                    ///< model.steps
  int64_t hidden = 0;                   ///< model.hidden
  int64_t res_blocks = 1;               ///< model.res_blocks (glow: 0)
  int64_t mlp_layers = 2;               ///< model.mlp_layers
  std::string coupling_scale = "tanh";  ///< model.coupling_scale
  double scale_bound = 3.0;             ///< model.scale_bound
  std::string dequantize = "logit";     ///< model.dequantize
  std::string dequantization = "auto";  ///< model.dequantization
  int64_t dequantizer_couplings = 4;    ///< model.dequantizer_couplings
  int64_t dequantizer_hidden = 16;      ///< model.dequantizer_hidden
  double logit_alpha = 0.05;            ///< model.logit_alpha
  int64_t eval_samples = 1;             ///< model.eval_samples
  std::string precision = "fp32";       ///< model.precision
  std::string memory_format = "nchw";   ///< model.memory_format
  bool learned_prior = true;            ///< model.learned_prior (glow only)
  bool conditional = true;              ///< model.conditional
  double temperature = 1.0;             ///< sample.temperature

  static FlowSettings defaults(const std::string& arch) {
    FlowSettings s;
    // Glow's own choices (sigmoid scales, inputs in [-1, 1]) measured worse on Fashion-MNIST's
    // saturated pixels at a 5-minute budget (test bits/dim, README "Likelihoods"): its
    // log sigmoid scales only contract, RealNVP's tanh scales and logit inputs do better.
    if (arch == "glow") {
      s.res_blocks = 0;
      s.logit_alpha = 0.001;
      // Channels-last conditioners: train step 1.18x (492 against 417 img/s, medians of three
      // runs of bench/flow_bench on the 2-core AVX2 EPYC), from the 1x1 and few-channel
      // convolutions. RealNVP's 64-channel 3x3 convolutions at 28x28 run slower backward in
      // that layout there (63 against 69 img/s), so it stays NCHW unless asked.
      s.memory_format = "auto";
    }
    return s;
  }
};

KeyTable<FlowSettings> flow_keys(const std::string& arch) {
  using O = FlowSettings;
  KeyTable<O> t;
  t.add("model.levels", &O::levels, "multi-scale levels (0 = as many as the image size allows)");
  t.add("model.steps", &O::steps,
        "flow steps (glow) / couplings per phase (realnvp) per level; 0 = 8 for glow, 3 for "
        "realnvp; toys: steps in all, 0 = 8");
  t.add("model.hidden", &O::hidden, "coupling network width (0 = 64 for images, 128 for toys)");
  t.add("model.res_blocks", &O::res_blocks,
        "residual blocks per image coupling network (0 = Glow's conv3-conv1-conv3)");
  t.add("model.mlp_layers", &O::mlp_layers, "hidden layers of the toy coupling MLPs");
  t.add("model.coupling_scale", &O::coupling_scale,
        "coupling log-scale: sigmoid (Glow: log sigmoid(h + 2), soft-bounded) or tanh "
        "(RealNVP: a tanh(h), a learned)",
        {"sigmoid", "tanh"});
  t.add("model.scale_bound", &O::scale_bound,
        "soft bound on sigmoid log-scales, keeps sampling finite (0 = none)");
  t.add("model.dequantize", &O::dequantize,
        "pixel pre-processing after dequantisation: [-1, 1] or logit (RealNVP sec. 4.1)",
        {"uniform", "logit"});
  t.add("model.dequantization", &O::dequantization,
        "dequantisation noise u of 8-bit pixels k + u: uniform, or variational (a conditional "
        "flow q(u|x) trained jointly on the bound E_q[log p(x + u) - log q(u|x)], Flow++, Ho "
        "et al. 2019); auto: variational for glow on images, else uniform",
        {"auto", "uniform", "variational"});
  t.add("model.dequantizer_couplings", &O::dequantizer_couplings,
        "variational dequantisation: conditional affine couplings of q(u|x)");
  t.add("model.dequantizer_hidden", &O::dequantizer_hidden,
        "variational dequantisation: width of q(u|x)'s feature and coupling networks");
  t.add("model.logit_alpha", &O::logit_alpha,
        "logit pre-processing margin: logit(alpha + (1 - 2 alpha) x) (RealNVP: 0.05)");
  t.add("model.eval_samples", &O::eval_samples,
        "dequantisation draws per test image for eval nll (importance-weighted bound, Flow++ "
        "eq. 13)");
  t.add("sample.temperature", &O::temperature, "latent temperature (Glow samples at 0.7)");
  t.add("model.precision", &O::precision,
        "coupling network arithmetic: fp32, bf16 autocast (auto: where the CPU has native bf16) "
        "for the conditioner networks "
        "(scales, shifts, the coupling itself and log-determinants stay fp32)",
        nn::precision_choices());
  t.add("model.memory_format", &O::memory_format, nn::kMemoryFormatHelp,
        {"auto", "nchw", "channels_last"});
  t.add("model.conditional", &O::conditional,
        "class-conditional log p(x|y) on labelled images: a learned per-class prior on every "
        "latent (Glow's y-conditioned prior, Kingma & Dhariwal 2018 sec. 5); sample --class");
  if (arch == "glow")
    t.add("model.learned_prior", &O::learned_prior,
          "learned conditional prior at each factor-out (Glow)");
  return t;
}

class FlowModel : public Model {
 public:
  FlowModel(const std::string& arch, const Config& c, const DataInfo& info)
      : info_(info), net_(nullptr) {
    FlowSettings st = FlowSettings::defaults(arch);
    flow_keys(arch).read_into(c, st);
    flow::FlowOptions o;
    o.shape = info.shape;
    o.arch = arch;
    o.levels = st.levels;
    const bool glow = arch == "glow", image = info.is_image();
    o.steps = st.steps > 0 ? st.steps : (glow || !image ? 8 : 3);
    o.hidden = st.hidden > 0 ? st.hidden : (image ? 64 : 128);
    o.res_blocks = st.res_blocks;
    o.mlp_layers = st.mlp_layers;
    o.learned_prior = glow && st.learned_prior;
    o.scale = st.coupling_scale;
    o.scale_bound = st.scale_bound;
    o.bf16 = nn::parse_precision(st.precision, "model.precision") == nn::Precision::Bf16;
    o.channels_last =
        image && nn::channels_last_for(st.memory_format, torch::Device(c.get_string("device")));
    conditional_ = st.conditional && image && info.num_classes() > 0;
    o.num_classes = conditional_ ? info.num_classes() : 0;
    dequantize_ = st.dequantize;
    alpha_ = st.logit_alpha;
    temperature_ = st.temperature;
    eval_samples_ = st.eval_samples;
    if (alpha_ <= 0 || alpha_ >= 0.5)
      throw Error("model.logit_alpha must be in (0, 0.5), got " + std::to_string(alpha_));
    net_ = flow::Flow(o);
    const bool variational =
        st.dequantization == "variational" || (st.dequantization == "auto" && glow && image);
    if (variational) {
      if (!image)
        throw Error("model.dequantization=variational is for 8-bit images; '" + info.dataset +
                    "' is vector data");
      flow::DequantizerOptions d;
      d.shape = info.shape;
      d.couplings = st.dequantizer_couplings;
      d.hidden = st.dequantizer_hidden;
      dequantizer_ = flow::Dequantizer(d);
    }
    register_net();
  }

  torch::nn::Module& module() override { return *holder_; }

  /// Per example: -log p(k + u) in nats, the density of dequantised pixels k + u in [0, 256)^D
  /// (images; with uniform u an upper bound on the discrete NLL), or -log p(x) (vectors); given
  /// the labels y when class-conditional.
  torch::Tensor nll(const torch::Tensor& x, const torch::Tensor& u, const torch::Tensor& label) {
    if (!info_.is_image()) return -net_->log_prob(x);
    torch::Tensor logdet = torch::zeros({x.size(0)}, x.options());
    torch::Tensor x01 = (levels_of(x) + u) / 256.0;  // R = 1 dequantised pixels
    torch::Tensor y;
    if (dequantize_ == "logit") {
      y = flow::logit_transform(x01, alpha_, logdet);
    } else {  // uniform: y = 2 x01 - 1, log|dy/dx01| = D log 2
      y = 2.0 * x01 - 1.0;
      logdet = logdet + static_cast<double>(dims()) * std::log(2.0);
    }
    // -log p(x01) + D log 256 bounds -log P(k) (metrics/bits_per_dim.h, R = 1).
    return -(net_->log_prob(y, labels(label)) + logdet) + static_cast<double>(dims()) * kLog256;
  }

  // Per example: the negative dequantisation bound -(log p(k + u) - log q(u | k)) with one draw
  // u ~ q (Flow++ eq. 12; q = 1 for uniform u), and log q(u | k) (undefined unless variational).
  std::pair<torch::Tensor, torch::Tensor> objective(const torch::Tensor& x,
                                                    const torch::Tensor& y) {
    if (!info_.is_image()) return {nll(x, torch::Tensor(), y), torch::Tensor()};
    if (!dequantizer_) return {nll(x, torch::rand_like(x), y), torch::Tensor()};
    auto [u, log_q] = dequantizer_->sample(levels_of(x), torch::randn_like(x));
    return {nll(x, u, y) + log_q, log_q};
  }
  double nats_per_bit_dim() const { return static_cast<double>(dims()) * std::log(2.0); }

  // Maximum likelihood on dequantised data (Dinh et al. 2017 eq. 3; Kingma & Dhariwal 2018),
  // jointly with the dequantiser when variational (Flow++ eq. 12).
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) override {
    torch::Tensor l = objective(x, y).first.mean();
    // Images: bits/dim (the number people compare); vectors: nats per example.
    return info_.is_image() ? l / nats_per_bit_dim() : l;
  }

  // The default step, logging the dequantiser's E[log q(u | k)] in bits/dim when variational
  // (0 for uniform noise; it rises as q concentrates where p(k + u) is large).
  void train_step(const data::Batcher::Batch& b, train::StepContext& ctx) override {
    if (!dequantizer_) {
      ctx.minimize("main", loss(b.x, b.y));
      return;
    }
    auto [l, log_q] = objective(b.x, b.y);
    ctx.log("dequant_log_q", log_q.mean().item<double>() / nats_per_bit_dim());
    ctx.minimize("main", l.mean() / nats_per_bit_dim());
  }

  // ActNorm's data-dependent init on the first global batch (the same on every data-parallel
  // rank), with the dequantisation noise step 1 will draw: LibTorch's generator is restored, so
  // one process initialises exactly as if ActNorm had waited for step 1's forward pass.
  void data_init(const data::Batcher::Batch& b) override {
    torch::NoGradGuard no_grad;
    auto gen = at::detail::getDefaultCPUGenerator();
    torch::Tensor state;
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      state = gen.get_state();
    }
    loss(b.x, b.y);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
  }

  // n images (of classes `label` when conditional) at a latent temperature.
  torch::Tensor draw(int64_t n, double temperature, at::Generator& gen,
                     const torch::Tensor& label) {
    torch::Tensor y = net_->sample(n, temperature, gen, labels(label));
    if (!info_.is_image()) return y;
    torch::Tensor x01 = dequantize_ == "logit" ? flow::logit_inverse(y, alpha_) : (y + 1.0) * 0.5;
    torch::Tensor k = torch::floor(x01 * 256.0).clamp(0, 255);
    return k / 127.5 - 1.0;  // NaN stays NaN: a broken flow must not look fine
  }

  SampleResult sample(const SampleRequest& req) override {
    torch::NoGradGuard no_grad;
    const double t = temperature_;
    SampleResult res;
    res.labels = request_labels(req, info_.num_classes(), conditional_);
    at::Generator gen = at::detail::createCPUGenerator(req.seed);
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < req.n; i += 500) {
      const int64_t b = std::min<int64_t>(500, req.n - i);
      const torch::Tensor y = conditional_ ? res.labels.narrow(0, i, b) : torch::Tensor();
      parts.push_back(draw(b, t, gen, y).cpu());
      if (req.progress) req.progress(i + b, req.n);
    }
    res.x = torch::cat(parts);
    res.params = {{"seed", std::to_string(req.seed)}, {"temperature", std::to_string(t)}};
    if (conditional_)
      res.params["class"] = req.class_label >= 0 ? std::to_string(req.class_label) : "all";
    return res;
  }

  Json test_likelihood(const data::Dataset& test, int64_t n, int64_t k, uint64_t seed) override {
    torch::NoGradGuard no_grad;
    holder_->eval();
    if (k <= 0) k = eval_samples_;
    if (!info_.is_image()) k = 1;
    if (n <= 0 || n > test.size()) n = test.size();
    at::Generator gen = at::detail::createCPUGenerator(seed);
    std::vector<torch::Tensor> lls;  // per test example, float64
    Progress bar(n, 0, "nll", 10.0, /*delay_s=*/1.0);
    for (int64_t i = 0; i < n; i += 500) {
      const int64_t b = std::min<int64_t>(500, n - i);
      torch::Tensor x = test.x.narrow(0, i, b),
                    y = test.y.defined() ? test.y.narrow(0, i, b) : test.y;
      torch::Tensor ll;
      if (info_.is_image()) {
        // Importance-weighted dequantisation: log P(k) >= log mean_j p(k + u_j) / q(u_j | k)
        // (Ho et al. 2019, Flow++, eq. 13; q = 1 for uniform noise); k = 1 is the usual
        // single-draw bound.
        ll = flow::dequantized_log_likelihood([&](const torch::Tensor& u) { return -nll(x, u, y); },
                                              dequantizer_ ? dequantizer_.get() : nullptr,
                                              levels_of(x), k, gen);
      } else {
        ll = -nll(x, torch::Tensor(), y).to(torch::kFloat64);
      }
      lls.push_back(ll);
      bar.update(i + b, "images, K = " + std::to_string(k));
    }
    bar.finish("");
    torch::Tensor ll = torch::cat(lls);
    // the standard error of the mean over test images (0 for a single image)
    const double nll = -ll.mean().item<double>(),
                 se = n > 1 ? (ll.std() / std::sqrt(double(n))).item<double>() : 0.0;
    Json r = {{"n", n}, {"nll_nats", nll}, {"nll_stderr", se}, {"conditional", conditional_}};
    if (conditional_) r["description"] = "-log p(x|y), each test image given its label";
    if (info_.is_image()) {
      r["k"] = k;
      r["bits_per_dim"] = metrics::bits_per_dim(nll, dims());
      r["bits_per_dim_stderr"] = metrics::bits_per_dim(se, dims());
      r["dequantization"] =
          dequantize_ + " pre-processing, " +
          (dequantizer_ ? "variational noise q(u|x) (Flow++), importance-weighted bound"
                        : "uniform noise") +
          ", " + std::to_string(k) + " draw(s) per image";
    }
    return r;
  }

  std::vector<std::string> write_figures(const train::RunDir& run, const data::Dataset&,
                                         uint64_t seed) override {
    torch::NoGradGuard no_grad;
    holder_->eval();
    std::vector<std::string> files;
    std::map<std::string, std::string> text = {{"model", net_->options().arch}};
    if (info_.is_image()) {
      // One row of 10 samples per temperature, the same latents scaled.
      std::vector<torch::Tensor> rows;
      for (double t : {0.0, 0.5, 0.7, 0.85, 1.0}) {
        at::Generator gen = at::detail::createCPUGenerator(seed);
        rows.push_back(
            draw(10, t, gen, torch::arange(10) % std::max<int64_t>(1, info_.num_classes())));
      }
      files.push_back(run.figure("temperatures.png"));
      text["figure"] =
          std::string("rows: sampling temperature 0, 0.5, 0.7, 0.85, 1 (same latents)") +
          (conditional_ ? "; columns: classes 0-9" : "");
      io::write_png(files.back(), io::make_grid(torch::cat(rows), 10), text);
    } else if (info_.shape[0] == 2) {
      const double extent = 4.0;
      torch::Tensor lp = flow::log_prob_grid(*net_, extent, 256);
      torch::Tensor p = lp.exp();
      files.push_back(run.figure("density.png"));
      text["figure"] = "model density p(x) on [-4, 4]^2, linear colour scale";
      io::write_png(files.back(), io::heat_rgb(p / p.max().clamp_min(1e-30)), text);
      const double h = 2 * extent / 256;
      text["mass_in_window"] = std::to_string(p.sum().item<double>() * h * h);
    }
    return files;
  }

 private:
  // The trainer sees one module holding the flow ("flow.items.N...").
  struct HolderImpl : torch::nn::Module {};
  void register_net() {
    holder_ = std::make_shared<HolderImpl>();
    holder_->register_module("flow", net_);
    if (dequantizer_) holder_->register_module("dequantizer", dequantizer_);
  }
  // The labels the flow sees: y for a conditional model, none otherwise.
  torch::Tensor labels(const torch::Tensor& y) const {
    return conditional_ && y.defined() ? y.to(torch::kInt64) : torch::Tensor();
  }
  int64_t dims() const {
    int64_t d = 1;
    for (int64_t v : info_.shape) d *= v;
    return d;
  }

  DataInfo info_;
  flow::Flow net_;
  flow::Dequantizer dequantizer_{nullptr};  // variational dequantisation, or null (uniform)
  std::shared_ptr<HolderImpl> holder_;
  std::string dequantize_;
  double alpha_ = 0.05, temperature_ = 1.0;
  int64_t eval_samples_ = 1;
  bool conditional_ = false;
};

}  // namespace

std::vector<ModelEntry> flow_entries() {
  std::vector<ModelEntry> out;
  for (const std::string arch : {"realnvp", "glow"}) {
    ModelEntry e;
    e.name = arch;
    e.family = "likelihood";
    e.description = arch == "glow" ? "Glow flow: actnorm, 1x1 conv, affine coupling (Kingma & "
                                     "Dhariwal 2018), exact likelihood"
                                   : "RealNVP flow: checkerboard/channel affine couplings, "
                                     "multi-scale (Dinh et al. 2017), exact likelihood";
    e.config_keys = flow_keys(arch).keys(FlowSettings::defaults(arch));
    // Runs written before the class-conditional flows and variational dequantisation were
    // unconditional, with uniform noise; before model.memory_format, NCHW (so they resume
    // bit-identically).
    e.stored_run_defaults = {{"model.conditional", "false"},
                             {"model.dequantization", "uniform"},
                             {"model.memory_format", "nchw"}};
    e.defaults = {{"train.batch_size", "64"},     {"train.lr", "1e-3"},
                  {"train.warmup_steps", "500"},  {"train.lr_schedule", "cosine"},
                  {"train.lr_min_ratio", "0.05"}, {"train.ema_decay", "0.999"},
                  {"train.grad_clip", "50.0"}};
    e.create = [arch](const Config& c, const DataInfo& info) {
      return std::unique_ptr<Model>(std::make_unique<FlowModel>(arch, c, info));
    };
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace gm
