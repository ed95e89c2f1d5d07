#include "genmodels/vae/vae_model.h"

#include <cmath>

#include "genmodels/core/error.h"
#include "genmodels/core/progress.h"
#include "genmodels/io/image.h"
#include "genmodels/io/plot.h"
#include "genmodels/metrics/bits_per_dim.h"
#include "genmodels/nn/precision.h"
#include "genmodels/vae/vae.h"

namespace gm {

namespace {

// The VAE plus the KL warm-up counter (a buffer, so checkpoints and resume carry it).
struct VaeNetImpl : torch::nn::Module {
  explicit VaeNetImpl(vae::VaeOptions o)
      : vae(register_module("vae", vae::Vae(std::move(o)))),
        kl_step(register_buffer("kl_step", torch::zeros({1}, torch::kFloat64))) {}
  vae::Vae vae;
  torch::Tensor kl_step;
};
TORCH_MODULE(VaeNet);

// The model.* settings of `vae`, bound to their keys by vae_keys().
struct VaeSettings {
  std::string arch = "auto";        ///< model.arch
  int64_t latent = 0;               ///< model.latent
  int64_t hidden = 512;             ///< model.hidden
  int64_t channels = 32;            ///< model.channels
  std::string likelihood = "auto";  ///< model.likelihood
  double beta = 1.0;                ///< model.beta
  int64_t kl_warmup = 0;            ///< model.kl_warmup
  int64_t iwae_k = 1000;            ///< model.iwae_k
  std::string precision = "fp32";   ///< model.precision
};

const KeyTable<VaeSettings>& vae_keys() {
  using O = VaeSettings;
  static const KeyTable<O> table = [] {
    KeyTable<O> t;
    t.add("model.arch", &O::arch, "encoder/decoder: auto (conv for images), mlp, conv",
          {"auto", "mlp", "conv"});
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
    t.add("model.precision", &O::precision,
          "network arithmetic: fp32, or bf16 autocast for the encoder and decoder body (output "
          "layer, likelihood and KL stay fp32)",
          {"fp32", "bf16"});
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
    beta_ = s.beta;
    warmup_ = s.kl_warmup;
    default_k_ = s.iwae_k;
    if (beta_ < 0) throw Error("model.beta must be >= 0, got " + std::to_string(beta_));
    net_ = VaeNet(o);
  }

  torch::nn::Module& module() override { return *net_; }

  // Bernoulli models see dynamically binarised images; the others the data itself.
  torch::Tensor target(const torch::Tensor& x, at::Generator* gen = nullptr) const {
    if (net_->vae->options().likelihood != vae::Likelihood::Bernoulli) return x;
    torch::Tensor p = ((x + 1.0) * 0.5).clamp(0, 1);
    return gen ? at::bernoulli(p, *gen) : torch::bernoulli(p);
  }

  // Negative ELBO (Kingma & Welling 2014, eq. 3) with the KL weighted by beta (Higgins et al.
  // 2017), minimised by the default train step.
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor&) override {
    double beta = beta_;
    if (warmup_ > 0) beta *= std::min(1.0, (net_->kl_step.item<double>() + 1.0) / warmup_);
    if (net_->is_training()) net_->kl_step.add_(1.0);
    auto t = net_->vae->elbo_terms(target(x));
    return (-t.log_px_z + beta * t.kl).mean();
  }

  SampleResult sample(const SampleRequest& req) override {
    torch::NoGradGuard no_grad;
    at::Generator gen = at::detail::createCPUGenerator(req.seed);
    const int64_t L = net_->vae->options().latent;
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < req.n; i += 1000) {
      const int64_t b = std::min<int64_t>(1000, req.n - i);
      torch::Tensor z = at::randn({b, L}, gen, torch::kFloat32);
      torch::Tensor params = net_->vae->decode(z);
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
    SampleResult res;
    res.x = torch::cat(parts);
    res.params = {{"seed", std::to_string(req.seed)},
                  {"output", gaussian() ? "x ~ p(x|z)" : "decoder mean"}};
    return res;
  }

  Json test_likelihood(const data::Dataset& test, int64_t n, int64_t k, uint64_t seed) override {
    torch::NoGradGuard no_grad;
    net_->eval();
    if (k <= 0) k = default_k_;
    if (n <= 0 || n > test.size()) n = test.size();
    at::Generator bin = at::detail::createCPUGenerator(seed + 1);  // fixed test binarisation
    torch::manual_seed(seed);
    const int64_t batch = std::max<int64_t>(1, 4096 / std::max<int64_t>(k, 1)) * 2;
    double iwae = 0, elbo = 0;
    Progress bar(n, 0, "nll", 10.0, /*delay_s=*/1.0);
    for (int64_t i = 0; i < n; i += batch) {
      const int64_t b = std::min(batch, n - i);
      torch::Tensor x = target(test.x.narrow(0, i, b), &bin);
      torch::Tensor lw = net_->vae->log_weights(x, k).to(torch::kFloat64);
      iwae += (torch::logsumexp(lw, 1) - std::log(static_cast<double>(k))).sum().item<double>();
      elbo += lw.mean(1).sum().item<double>();
      bar.update(i + b, "images, K = " + std::to_string(k));
    }
    bar.finish("");
    const int64_t D = net_->vae->dims();
    Json r = {{"n", n},
              {"k", k},
              {"nll_nats", -iwae / n},
              {"elbo_nats", elbo / n},
              {"likelihood", likelihood_name()}};
    // Discrete likelihoods (probability mass): bits/dim directly, no dequantisation correction.
    if (net_->vae->options().likelihood == vae::Likelihood::Logistic) {
      r["bits_per_dim"] = metrics::bits_per_dim(-iwae / n, D);
      r["elbo_bits_per_dim"] = metrics::bits_per_dim(-elbo / n, D);
    } else if (net_->vae->options().likelihood == vae::Likelihood::Bernoulli) {
      r["bits_per_binary_dim"] = metrics::bits_per_dim(-iwae / n, D);
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
    if (info_.is_image() && test.size() >= 32) {
      // Reconstructions: rows of 8 inputs, each followed by the row of their reconstructions.
      torch::Tensor x = test.x.narrow(0, 0, 32);
      torch::Tensor in = target(x, &bin);
      torch::Tensor shown = v->options().likelihood == vae::Likelihood::Bernoulli ? in * 2 - 1 : in;
      torch::Tensor rec = v->mean(v->decode(v->encode(in).first));
      std::vector<torch::Tensor> rows;
      for (int64_t r = 0; r < 4; ++r) {
        rows.push_back(shown.narrow(0, 8 * r, 8));
        rows.push_back(rec.narrow(0, 8 * r, 8));
      }
      files.push_back(run.figure("reconstructions.png"));
      text["figure"] = "reconstructions: input rows followed by their reconstruction rows";
      io::write_png(files.back(), io::make_grid(torch::cat(rows), 8), text);
      // Interpolations between the posterior means of 8 pairs of test images, 10 steps each.
      torch::Tensor a = v->encode(target(test.x.narrow(0, 0, 8), &bin)).first;
      torch::Tensor b = v->encode(target(test.x.narrow(0, 8, 8), &bin)).first;
      torch::Tensor w = torch::linspace(0, 1, 10).view({1, 10, 1});
      torch::Tensor z = (a.unsqueeze(1) * (1 - w) + b.unsqueeze(1) * w).reshape({80, -1});
      files.push_back(run.figure("interpolations.png"));
      text["figure"] = "latent interpolations between test images (rows), 10 steps";
      io::write_png(files.back(), io::make_grid(v->mean(v->decode(z)), 10), text);
    }
    if (v->options().latent == 2) {
      const int64_t n = std::min<int64_t>(test.size(), 5000);
      std::vector<torch::Tensor> mus;
      for (int64_t i = 0; i < n; i += 1000)
        mus.push_back(
            v->encode(target(test.x.narrow(0, i, std::min<int64_t>(1000, n - i)), &bin)).first);
      files.push_back(run.figure("latent.png"));
      text["figure"] = "posterior means of test examples coloured by class, [-3.5, 3.5]^2";
      io::write_png(files.back(), io::scatter_rgb(torch::cat(mus), test.y.narrow(0, 0, n)), text);
    }
    return files;
  }

 private:
  bool gaussian() const { return net_->vae->options().likelihood == vae::Likelihood::Gaussian; }
  std::string likelihood_name() const {
    switch (net_->vae->options().likelihood) {
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
  int64_t warmup_ = 0, default_k_ = 1000;
};

}  // namespace

std::vector<ModelEntry> vae_entries() {
  ModelEntry e;
  e.name = "vae";
  e.family = "likelihood";
  e.description = "variational autoencoder / beta-VAE (Kingma & Welling 2014), IWAE likelihood";
  e.config_keys = vae_keys().keys();
  e.defaults = {{"train.batch_size", "128"},
                {"train.lr", "1e-3"},
                {"train.lr_schedule", "cosine"},
                {"train.lr_min_ratio", "0.05"},
                {"train.ema_decay", "0.999"}};
  e.create = [](const Config& c, const DataInfo& info) {
    return std::make_unique<VaeModel>(c, info);
  };
  return {e};
}

}  // namespace gm
