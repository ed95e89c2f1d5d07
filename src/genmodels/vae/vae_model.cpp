#include "genmodels/vae/vae_model.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <sstream>

#include "genmodels/core/error.h"
#include "genmodels/core/progress.h"
#include "genmodels/io/image.h"
#include "genmodels/io/plot.h"
#include "genmodels/metrics/bits_per_dim.h"
#include "genmodels/nn/layout.h"
#include "genmodels/nn/precision.h"
#include "genmodels/vae/ladder.h"
#include "genmodels/vae/vae.h"

namespace gm {

namespace {

// The VAE (one latent layer, or the hierarchical ladder VAE when `ladder` is given) plus the KL
// warm-up counter (a buffer, so checkpoints and resume carry it).
struct VaeNetImpl : torch::nn::Module {
  VaeNetImpl(vae::VaeOptions o, const vae::LadderOptions* ladder_options)
      : kl_step(register_buffer("kl_step", torch::zeros({1}, torch::kFloat64))) {
    if (ladder_options)
      ladder = register_module("ladder", vae::LadderVae(*ladder_options));
    else
      vae = register_module("vae", vae::Vae(std::move(o)));
  }
  vae::Vae vae{nullptr};
  vae::LadderVae ladder{nullptr};
  torch::Tensor kl_step;
};
TORCH_MODULE(VaeNet);

// The model.* settings of `vae`, bound to their keys by vae_keys().
struct VaeSettings {
  std::string arch = "auto";           ///< model.arch
  int64_t latent = 0;                  ///< model.latent
  int64_t hidden = 512;                ///< model.hidden
  int64_t channels = 32;               ///< model.channels
  std::string likelihood = "auto";     ///< model.likelihood
  double beta = 1.0;                   ///< model.beta
  int64_t kl_warmup = 0;               ///< model.kl_warmup
  int64_t iwae_k = 1000;               ///< model.iwae_k
  int64_t iwae_n = 0;                  ///< model.iwae_n
  std::string ladder_layers = "2,2";   ///< model.ladder_layers
  int64_t ladder_latent = 8;           ///< model.ladder_latent
  std::string precision = "fp32";      ///< model.precision
  std::string memory_format = "nchw";  ///< model.memory_format
  bool conditional = true;             ///< model.conditional
  std::string prior = "learned";       ///< model.prior
  int64_t pseudo_inputs = 500;         ///< model.pseudo_inputs
};

const KeyTable<VaeSettings>& vae_keys() {
  using O = VaeSettings;
  static const KeyTable<O> table = [] {
    KeyTable<O> t;
    t.add("model.arch", &O::arch,
          "encoder/decoder: auto (conv for images), mlp, conv, ladder (hierarchical VAE: "
          "residual top-down stochastic layers, Sonderby et al. 2016, VDVAE, NVAE)",
          {"auto", "mlp", "conv", "ladder"});
    t.add("model.ladder_layers", &O::ladder_layers,
          "ladder: stochastic layers per resolution, coarsest first (2,2 = two at 7x7, two at "
          "14x14 for 28x28 images)");
    t.add("model.ladder_latent", &O::ladder_latent,
          "ladder: channels of each stochastic layer's spatial latent");
    t.add("model.latent", &O::latent, "latent dimensions (0 = 32 for images, 2 for vectors)");
    t.add("model.hidden", &O::hidden, "MLP width / conv fully connected width");
    t.add("model.channels", &O::channels, "conv channels of the first level (second: 2x)");
    t.add("model.likelihood", &O::likelihood,
          "decoder: auto (logistic for images, gaussian for vectors), logistic (8-bit "
          "discretised), bernoulli (dynamically binarised), gaussian",
          {"auto", "logistic", "bernoulli", "gaussian"});
    t.add("model.beta", &O::beta, "KL weight (beta-VAE; 1 = the ELBO)");
    t.add("model.kl_warmup", &O::kl_warmup, "steps over which the KL weight ramps from 0 to beta");
    t.add("model.iwae_k", &O::iwae_k, "importance samples for the test likelihood (eval nll)");
    t.add("model.iwae_n", &O::iwae_n,
          "test images for eval nll when --n is not given (0 = 1000, 200 for the slower ladder "
          "VAE; the full estimate: --n 10000)");
    t.add("model.precision", &O::precision,
          "network arithmetic: fp32, bf16 autocast (auto: where the CPU has native bf16) for the "
          "encoder and decoder body (output "
          "layer, likelihood and KL stay fp32)",
          nn::precision_choices());
    t.add("model.memory_format", &O::memory_format,
          "model.arch=conv: encoder convolutions and decoder upsamplers channels_last (NHWC), "
          "nchw, or auto (channels_last on CPU, nchw elsewhere)",
          {"auto", "nchw", "channels_last"});
    t.add("model.conditional", &O::conditional,
          "class-conditional q(z|x,y) and p(x|z,y) on labelled data (Kingma et al. 2014 M2, "
          "Sohn et al. 2015); sample --class");
    t.add("model.prior", &O::prior,
          "p(z): standard N(0, I); vamp (VampPrior, Tomczak & Welling 2018: a mixture of the "
          "posteriors of learned pseudo-inputs); learned (a learned Gaussian per class, the "
          "CVAE's conditional prior, Sohn et al. 2015)",
          {"standard", "vamp", "learned"});
    t.add("model.pseudo_inputs", &O::pseudo_inputs,
          "VampPrior pseudo-inputs K (conditional: K / classes per class)");
    return t;
  }();
  return table;
}

class VaeModel : public Model {
 public:
  VaeModel(const Config& c, const DataInfo& info) : info_(info), net_(nullptr) {
    const VaeSettings s = vae_keys().read(c);
    vae::VaeOptions o;
    o.shape = info.shape;
    const bool image = info.is_image();
    o.latent = s.latent > 0 ? s.latent : (image ? 32 : 2);
    o.arch = s.arch == "auto" ? (image ? "conv" : "mlp") : s.arch;
    o.hidden = s.hidden;
    o.channels = s.channels;
    o.likelihood = vae::parse_likelihood(s.likelihood == "auto" ? (image ? "logistic" : "gaussian")
                                                                : s.likelihood);
    o.bf16 = nn::parse_precision(s.precision, "model.precision") == nn::Precision::Bf16;
    conditional_ = s.conditional && info.num_classes() > 0;
    o.num_classes = conditional_ ? info.num_classes() : 0;
    o.prior = vae::parse_prior(s.prior);
    o.pseudo_inputs = s.pseudo_inputs;
    o.channels_last = nn::channels_last_for(s.memory_format, torch::Device(c.get_string("device")));
    beta_ = s.beta;
    warmup_ = s.kl_warmup;
    default_k_ = s.iwae_k;
    default_n_ = s.iwae_n;
    if (beta_ < 0) throw Error("model.beta must be >= 0, got " + std::to_string(beta_));
    if (default_k_ < 1) throw Error("model.iwae_k must be >= 1, got " + std::to_string(default_k_));
    if (default_n_ < 0) throw Error("model.iwae_n must be >= 0, got " + std::to_string(default_n_));
    if (o.arch != "ladder") {
      net_ = VaeNet(o, nullptr);
      return;
    }
    // The hierarchical VAE: its priors are its top-down layers (model.prior: standard or
    // learned both mean those), its width model.channels.
    if (o.prior == vae::Prior::Vamp)
      throw Error(
          "model.prior=vamp needs model.arch mlp or conv; model.arch=ladder learns its "
          "priors in its top-down layers");
    vae::LadderOptions lo;
    lo.shape = info.shape;
    lo.channels = o.channels;
    lo.latent_channels = s.ladder_latent;
    lo.likelihood = o.likelihood;
    lo.num_classes = o.num_classes;
    lo.bf16 = o.bf16;
    lo.layers_per_level.clear();
    std::stringstream parts(s.ladder_layers);
    for (std::string part; std::getline(parts, part, ',');) {
      size_t used = 0;
      int64_t v = -1;
      try {
        v = std::stoll(part, &used);
      } catch (const std::exception&) {
      }
      if (v < 1 || used != part.size())
        throw Error("model.ladder_layers: '" + s.ladder_layers +
                    "' is not a comma-separated list of layer counts >= 1 (e.g. 2,2)");
      lo.layers_per_level.push_back(v);
    }
    net_ = VaeNet(o, &lo);
  }

  torch::nn::Module& module() override { return *net_; }

  // Bernoulli models see dynamically binarised images; the others the data itself.
  torch::Tensor target(const torch::Tensor& x, at::Generator* gen = nullptr) const {
    if (likelihood() != vae::Likelihood::Bernoulli) return x;
    torch::Tensor p = ((x + 1.0) * 0.5).clamp(0, 1);
    return gen ? at::bernoulli(p, *gen) : torch::bernoulli(p);
  }

  // Negative ELBO (Kingma & Welling 2014, eq. 3) with the KL weighted by beta (Higgins et al.
  // 2017), minimised by the default train step.
  // Conditional: the bound on log p(x|y), Kingma et al. 2014 eq. 6 without its constant
  // log p(y), with the labels of the batch.
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) override {
    double beta = beta_;
    if (warmup_ > 0) beta *= std::min(1.0, (net_->kl_step.item<double>() + 1.0) / warmup_);
    if (net_->is_training()) net_->kl_step.add_(1.0);
    if (net_->ladder) {
      auto t = net_->ladder->elbo_terms(target(x), labels(y));
      return (-t.log_px_z + beta * t.kl).mean();
    }
    auto t = net_->vae->elbo_terms(target(x), labels(y));
    return (-t.log_px_z + beta * t.kl).mean();
  }

  SampleResult sample(const SampleRequest& req) override {
    torch::NoGradGuard no_grad;
    SampleResult res;
    res.labels = request_labels(req, info_.num_classes(), conditional_);
    at::Generator gen = at::detail::createCPUGenerator(req.seed);
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < req.n; i += 1000) {
      const int64_t b = std::min<int64_t>(1000, req.n - i);
      const torch::Tensor y = conditional_ ? res.labels.narrow(0, i, b) : torch::Tensor();
      if (net_->ladder) {  // images only: z drawn top-down, the decoder mean
        parts.push_back(net_->ladder->mean(net_->ladder->sample_params(b, gen, y)));
        if (req.progress) req.progress(i + b, req.n);
        continue;
      }
      torch::Tensor z = net_->vae->sample_prior(b, gen, y);
      torch::Tensor params = net_->vae->decode(z, y);
      if (gaussian()) {
        // Real vectors: a draw from p(x|z), the model's density (its mean alone is a curve).
        auto ml = params.chunk(2, 1);
        parts.push_back(ml[0] +
                        torch::exp(0.5 * ml[1]) * at::randn(ml[0].sizes(), gen, torch::kFloat32));
      } else {
        parts.push_back(net_->vae->mean(params));  // images: the decoder mean, as is customary
      }
      if (req.progress) req.progress(i + b, req.n);
    }
    res.x = torch::cat(parts);
    res.params = {{"seed", std::to_string(req.seed)},
                  {"output", gaussian() ? "x ~ p(x|z)" : "decoder mean"},
                  {"prior", prior_name()}};
    if (conditional_)
      res.params["class"] = req.class_label >= 0 ? std::to_string(req.class_label) : "all";
    return res;
  }

  // IWAE-k bound (Burda et al. 2016, eq. 8) per test image, averaged over the first n images,
  // with the standard error of that mean (per-image std / sqrt(n)). Conditional models give
  // -log p(x|y) for each image's own label.
  Json test_likelihood(const data::Dataset& test, int64_t n, int64_t k, uint64_t seed) override {
    torch::NoGradGuard no_grad;
    net_->eval();
    if (k <= 0) k = default_k_;
    if (n <= 0)
      n = std::min(default_n_ > 0 ? default_n_ : (net_->ladder ? 200 : 1000), test.size());
    n = std::min(n, test.size());
    std::cerr << "genmodels: nll: IWAE-" << k << " bound on "
              << (n == test.size() ? "all " : std::to_string(n) + " of ") << test.size()
              << " test images";
    if (n < test.size() || k < default_k_)
      std::cerr << "; the full estimate: --n " << test.size() << " --k " << std::max(k, default_k_);
    std::cerr << "\n";
    at::Generator bin = at::detail::createCPUGenerator(seed + 1);  // fixed test binarisation
    torch::manual_seed(seed);
    const int64_t batch = std::max<int64_t>(1, 4096 / std::max<int64_t>(k, 1)) * 2;
    std::vector<torch::Tensor> iwae, elbo;  // per image
    Progress bar(n, 0, "nll", 10.0, /*delay_s=*/1.0);
    for (int64_t i = 0; i < n; i += batch) {
      const int64_t b = std::min(batch, n - i);
      torch::Tensor x = target(test.x.narrow(0, i, b), &bin);
      const torch::Tensor y = labels(test.y.narrow(0, i, b));
      torch::Tensor lw =
          (net_->ladder ? net_->ladder->log_weights(x, k, 512, y) : net_->vae->log_weights(x, k, y))
              .to(torch::kFloat64);
      iwae.push_back(torch::logsumexp(lw, 1) - std::log(static_cast<double>(k)));
      elbo.push_back(lw.mean(1));
      bar.update(i + b, "images, K = " + std::to_string(k));
    }
    const torch::Tensor ll = torch::cat(iwae), el = torch::cat(elbo);
    // The mean over images and its standard error.
    auto stderr_of = [n](const torch::Tensor& v) {
      return n > 1 ? v.std().item<double>() / std::sqrt(static_cast<double>(n)) : 0.0;
    };
    const double nll = -ll.mean().item<double>(), nll_se = stderr_of(ll);
    const double nelbo = -el.mean().item<double>(), elbo_se = stderr_of(el);
    const int64_t D = net_->ladder ? net_->ladder->dims() : net_->vae->dims();
    bar.finish("IWAE-" + std::to_string(k) + " NLL " + num(nll) + " +- " + num(nll_se) +
               " nats per image");
    Json r = {{"n", n},
              {"k", k},
              {"nll_nats", nll},
              {"nll_stderr", nll_se},
              {"elbo_nats", -nelbo},
              {"elbo_stderr", elbo_se},
              {"likelihood", likelihood_name()},
              {"prior", prior_name()},
              {"conditional", conditional_},
              {"bound", "IWAE-" + std::to_string(k) + " (Burda et al. 2016)"},
              {"description", std::string(conditional_ ? "-log p(x|y), each test image given its "
                                                         "label"
                                                       : "-log p(x)") +
                                  ": IWAE-" + std::to_string(k) + " upper bound on the first " +
                                  std::to_string(n) + " of " + std::to_string(test.size()) +
                                  " test images, +- one standard error over images"}};
    // Discrete likelihoods (probability mass): bits/dim directly, no dequantisation correction.
    if (likelihood() == vae::Likelihood::Logistic) {
      r["bits_per_dim"] = metrics::bits_per_dim(nll, D);
      r["bits_per_dim_stderr"] = metrics::bits_per_dim(nll_se, D);
      r["elbo_bits_per_dim"] = metrics::bits_per_dim(nelbo, D);
      r["elbo_bits_per_dim_stderr"] = metrics::bits_per_dim(elbo_se, D);
    } else if (likelihood() == vae::Likelihood::Bernoulli) {
      r["bits_per_binary_dim"] = metrics::bits_per_dim(nll, D);
      r["bits_per_binary_dim_stderr"] = metrics::bits_per_dim(nll_se, D);
    }
    return r;
  }

  std::vector<std::string> write_figures(const train::RunDir& run, const data::Dataset& test,
                                         uint64_t seed) override {
    torch::NoGradGuard no_grad;
    net_->eval();
    std::vector<std::string> files;
    at::Generator bin = at::detail::createCPUGenerator(seed + 1);
    auto& v = net_->vae;
    std::map<std::string, std::string> text = {{"model", "vae"}};
    if (conditional_) text["conditional"] = "encoder and decoder given each image's label";
    auto first = [&](int64_t i, int64_t b) { return labels(test.y.narrow(0, i, b)); };
    // Reconstructions of the first 32 test images: rows of 8 inputs, each followed by the row of
    // their reconstructions (the ladder's with every layer's z at its posterior mean).
    auto reconstructions = [&] {
      torch::Tensor in = target(test.x.narrow(0, 0, 32), &bin);
      torch::Tensor shown = likelihood() == vae::Likelihood::Bernoulli ? in * 2 - 1 : in;
      torch::Tensor rec = net_->ladder
                              ? net_->ladder->mean(net_->ladder->reconstruct(in, first(0, 32)))
                              : v->mean(v->decode(v->encode(in, first(0, 32)).first, first(0, 32)));
      std::vector<torch::Tensor> rows;
      for (int64_t r = 0; r < 4; ++r) {
        rows.push_back(shown.narrow(0, 8 * r, 8));
        rows.push_back(rec.narrow(0, 8 * r, 8));
      }
      files.push_back(run.figure("reconstructions.png"));
      text["figure"] = "reconstructions: input rows followed by their reconstruction rows";
      io::write_png(files.back(), io::make_grid(torch::cat(rows), 8), text);
    };
    if (net_->ladder) {  // spatial latents spread over layers: no interpolation or latent plot
      if (test.size() >= 32) reconstructions();
      return files;
    }
    if (info_.is_image() && test.size() >= 32) {
      reconstructions();
      // Interpolations between the posterior means of 8 pairs of test images, 10 steps each.
      // Conditional: each pair shares a class (the first later test image with image i's
      // label) and the decoder is given it.
      std::vector<int64_t> ia(8), ib(8);
      for (int64_t i = 0; i < 8; ++i) {
        ia[i] = i;
        ib[i] = 8 + i;
        if (!conditional_) continue;
        const int64_t yi = test.y[i].item<int64_t>();
        for (int64_t j = 8; j < test.size(); ++j)
          if (test.y[j].item<int64_t>() == yi &&
              std::find(ib.begin(), ib.begin() + i, j) == ib.begin() + i) {
            ib[i] = j;
            break;
          }
      }
      const torch::Tensor ta = torch::tensor(ia), tb = torch::tensor(ib);
      const torch::Tensor ya = labels(test.y.index_select(0, ta));
      torch::Tensor a = v->encode(target(test.x.index_select(0, ta), &bin), ya).first;
      torch::Tensor b =
          v->encode(target(test.x.index_select(0, tb), &bin), labels(test.y.index_select(0, tb)))
              .first;
      torch::Tensor w = torch::linspace(0, 1, 10).view({1, 10, 1});
      torch::Tensor z = (a.unsqueeze(1) * (1 - w) + b.unsqueeze(1) * w).reshape({80, -1});
      const torch::Tensor yz = conditional_ ? ya.repeat_interleave(10) : torch::Tensor();
      files.push_back(run.figure("interpolations.png"));
      text["figure"] = conditional_
                           ? "latent interpolations between test images of one class (rows), 10 "
                             "steps, decoded with that class"
                           : "latent interpolations between test images (rows), 10 steps";
      io::write_png(files.back(), io::make_grid(v->mean(v->decode(z, yz)), 10), text);
      if (vamp()) {
        // The learned pseudo-inputs (at most 8 per class / 64), in the data range.
        torch::Tensor u = v->pseudo_inputs();
        const int64_t per = u.size(0) / (conditional_ ? info_.num_classes() : 1);
        std::vector<torch::Tensor> shown_u;
        for (int64_t g = 0; g < u.size(0) / per; ++g)
          shown_u.push_back(u.narrow(0, g * per, std::min<int64_t>(per, conditional_ ? 8 : 64)));
        torch::Tensor img = torch::cat(shown_u);
        if (v->options().likelihood == vae::Likelihood::Bernoulli) img = img * 2 - 1;
        files.push_back(run.figure("pseudo_inputs.png"));
        text["figure"] = conditional_ ? "VampPrior pseudo-inputs, one row per class"
                                      : "VampPrior pseudo-inputs (the first 64)";
        io::write_png(files.back(), io::make_grid(img.clamp(-1, 1), 8), text);
      }
    }
    if (v->options().latent == 2) {
      const int64_t n = std::min<int64_t>(test.size(), 5000);
      std::vector<torch::Tensor> mus;
      for (int64_t i = 0; i < n; i += 1000) {
        const int64_t b = std::min<int64_t>(1000, n - i);
        mus.push_back(v->encode(target(test.x.narrow(0, i, b), &bin), first(i, b)).first);
      }
      files.push_back(run.figure("latent.png"));
      text["figure"] = "posterior means of test examples coloured by class, [-3.5, 3.5]^2";
      io::write_png(files.back(), io::scatter_rgb(torch::cat(mus), test.y.narrow(0, 0, n)), text);
    }
    return files;
  }

 private:
  vae::Likelihood likelihood() const {
    return net_->ladder ? net_->ladder->options().likelihood : net_->vae->options().likelihood;
  }
  bool gaussian() const { return likelihood() == vae::Likelihood::Gaussian; }
  bool vamp() const { return !net_->ladder && net_->vae->options().prior == vae::Prior::Vamp; }
  std::string prior_name() const {
    if (net_->ladder) return "hierarchical (learned top-down priors)";
    switch (net_->vae->options().prior) {
      case vae::Prior::Vamp:
        return "vamp";
      case vae::Prior::Learned:
        return "learned";
      case vae::Prior::Standard:
        break;
    }
    return "standard";
  }
  // The labels the networks see: y for a conditional model, none otherwise.
  torch::Tensor labels(const torch::Tensor& y) const {
    return conditional_ ? y.to(torch::kInt64) : torch::Tensor();
  }
  std::string likelihood_name() const {
    switch (likelihood()) {
      case vae::Likelihood::Bernoulli:
        return "bernoulli (dynamically binarised)";
      case vae::Likelihood::Logistic:
        return "discretised logistic (8-bit)";
      case vae::Likelihood::Gaussian:
        return "gaussian";
    }
    return "";
  }

  DataInfo info_;
  VaeNet net_;
  double beta_ = 1.0;
  int64_t warmup_ = 0, default_k_ = 1000, default_n_ = 1000;
  bool conditional_ = false;
};

}  // namespace

std::vector<ModelEntry> vae_entries() {
  ModelEntry e;
  e.name = "vae";
  e.family = "likelihood";
  e.description =
      "variational autoencoder / beta-VAE (Kingma & Welling 2014), class-conditional, VampPrior, "
      "IWAE likelihood";
  e.config_keys = vae_keys().keys();
  e.defaults = {{"train.batch_size", "128"},
                {"train.lr", "1e-3"},
                {"train.lr_schedule", "cosine"},
                {"train.lr_min_ratio", "0.05"},
                {"train.ema_decay", "0.999"}};
  // Runs written before the class-conditional VAE were unconditional, before model.memory_format
  // NCHW.
  e.stored_run_defaults = {
      {"model.conditional", "false"}, {"model.prior", "standard"}, {"model.memory_format", "nchw"}};
  e.create = [](const Config& c, const DataInfo& info) {
    return std::make_unique<VaeModel>(c, info);
  };
  return {e};
}

}  // namespace gm
