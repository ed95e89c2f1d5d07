#include "genmodels/models/ddpm.h"

#include <optional>
#include <tuple>

#include "genmodels/core/error.h"
#include "genmodels/core/progress.h"
#include "genmodels/diffusion/loss.h"
#include "genmodels/diffusion/schedule.h"
#include "genmodels/diffusion/timestep_sampler.h"
#include "genmodels/diffusion/vlb.h"
#include "genmodels/score/denoiser_model.h"

namespace gm {

namespace {

// The diffusion.* settings of `ddpm`, bound to their keys by ddpm_keys().
struct DdpmOptions {
  std::string schedule = "cosine";   ///< diffusion.schedule
  int64_t timesteps = 1000;          ///< diffusion.timesteps
  std::string prediction = "v";      ///< diffusion.prediction
  double class_dropout = 0.1;        ///< diffusion.class_dropout
  bool learn_sigma = false;          ///< diffusion.learn_sigma
  double vlb_weight = 0.001;         ///< diffusion.vlb_weight
  bool importance_sampling = false;  ///< diffusion.importance_sampling
};

const KeyTable<DdpmOptions>& ddpm_keys() {
  using O = DdpmOptions;
  static const KeyTable<O> table = [] {
    KeyTable<O> t;
    t.add("diffusion.schedule", &O::schedule, "noise schedule", {"linear", "cosine"});
    t.add("diffusion.timesteps", &O::timesteps, "diffusion steps T");
    t.add("diffusion.prediction", &O::prediction, "network target", {"eps", "x0", "v"});
    t.add("diffusion.class_dropout", &O::class_dropout,
          "label dropout for classifier-free guidance");
    t.add("diffusion.learn_sigma", &O::learn_sigma,
          "learn the reverse variances, hybrid loss (Nichol & Dhariwal 2021, Sec. 3.1)");
    t.add("diffusion.vlb_weight", &O::vlb_weight, "lambda of L_hybrid = L_simple + lambda L_vlb");
    t.add("diffusion.importance_sampling", &O::importance_sampling,
          "sample t by L_vlb's second moment, weighting L_vlb (Nichol & Dhariwal 2021, eq. 18)");
    return t;
  }();
  return table;
}

class Ddpm : public score::DenoiserModel {
 public:
  Ddpm(const Config& c, const DataInfo& info)
      : DenoiserModel(c, info, ddpm_keys().read(c).learn_sigma ? 2 : 1),
        o_(ddpm_keys().read(c)),
        schedule_(diffusion::make_schedule(o_.schedule, o_.timesteps)),
        prediction_(diffusion::parse_prediction(o_.prediction)) {
    if (o_.importance_sampling && !o_.learn_sigma)
      throw Error(
          "diffusion.importance_sampling samples t for L_vlb: it needs "
          "diffusion.learn_sigma = true");
    if (!(o_.vlb_weight >= 0.0))
      throw Error("diffusion.vlb_weight = " + num(o_.vlb_weight) + " must be >= 0");
    if (o_.importance_sampling) {
      // The sampler's history is part of the checkpoint (bit-identical resume).
      const int64_t T = schedule_.num_steps();
      sampler_.emplace(
          net_->register_buffer("vlb_history", diffusion::LossAwareSampler::make_history(T)),
          net_->register_buffer("vlb_count", diffusion::LossAwareSampler::make_count(T)));
    }
  }

  // The simple loss (diffusion/loss.h); with learned variances L_hybrid = L_simple + lambda T
  // E_t[L_t] (Nichol & Dhariwal 2021, Sec. 3.1: L_vlb = sum_t L_t), t optionally importance-
  // sampled (Sec. 3.3) with the weights 1 / (T p_t) on the L_vlb term only, which keeps it an
  // unbiased estimate of L_vlb; L_simple is taken at the same t unweighted (improved-diffusion
  // weights the whole loss, which on a 2-D toy at T = 200 tripled the sample distance: the
  // weights of rarely drawn, noisy t's swamp L_simple).
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) override {
    diffusion::LossOptions lo;
    lo.prediction = prediction_;
    lo.class_dropout = conditional_ ? o_.class_dropout : 0.0;
    lo.null_label = null_label();
    lo.learned_variance = o_.learn_sigma;
    if (!o_.learn_sigma)
      return diffusion::diffusion_loss(net_fn(), schedule_, x, train_labels(y), lo);
    torch::Tensor t, w;
    if (sampler_) std::tie(t, w) = sampler_->sample(x.size(0));
    const auto terms =
        diffusion::diffusion_loss_terms(net_fn(), schedule_, x, train_labels(y), lo, t);
    if (sampler_) sampler_->update(terms.t, terms.vlb);
    const double T = static_cast<double>(schedule_.num_steps());
    torch::Tensor vlb = terms.vlb;
    if (w.defined()) vlb = vlb * w.to(vlb.device());
    return (terms.mse + o_.vlb_weight * T * vlb).mean();
  }

  // The ODE likelihood (DenoiserModel) and the variational bound (diffusion/vlb.h), both in
  // bits/dim: the bound on the 8-bit data itself (its decoder is discrete).
  Json test_likelihood(const data::Dataset& test, int64_t n, int64_t k, uint64_t seed) override {
    Json out = DenoiserModel::test_likelihood(test, n, k, seed);
    if (!info_.is_image()) return out;
    if (n <= 0 || n > test.size()) n = test.size();
    net_->eval();
    const diffusion::Denoiser d = denoiser();
    diffusion::Conditioning cond;
    if (conditional_) cond.null_label = num_classes_;
    const auto kind = d.learned_variance()
                          ? diffusion::VarianceKind::Learned
                          : (sample_.variance == "beta" ? diffusion::VarianceKind::Beta
                                                        : diffusion::VarianceKind::BetaTilde);
    at::Generator gen = at::detail::createCPUGenerator(seed + 1);
    constexpr int64_t kBatch = 100;
    const int64_t T = schedule_.num_steps();
    Progress bar(n * T, 0, "vlb", 10.0);
    double total = 0.0, prior = 0.0, decoder = 0.0;
    for (int64_t i = 0; i < n; i += kBatch) {
      const int64_t b = std::min(kBatch, n - i);
      const torch::Tensor x = test.x.narrow(0, i, b).to(device_);
      const auto r = diffusion::vlb_bits_per_dim(
          d, x, cond, kind, gen, true, [&](int64_t t, int64_t) { bar.update(i * T + t * b, ""); });
      total += r.total.sum().item<double>();
      prior += r.prior.sum().item<double>();
      decoder += r.decoder.sum().item<double>();
    }
    bar.finish(num(total / double(n)) + " bits/dim");
    out["vlb_bits_per_dim"] = total / double(n);
    out["vlb_prior_bits_per_dim"] = prior / double(n);
    out["vlb_decoder_bits_per_dim"] = decoder / double(n);
    out["vlb_n"] = n;
    out["vlb_variance"] = d.learned_variance()         ? "learned"
                          : sample_.variance == "beta" ? "beta"
                                                       : "beta_tilde";
    return out;
  }

 protected:
  diffusion::Denoiser denoiser() override {
    return diffusion::Denoiser(net_fn(), prediction_, schedule_, o_.learn_sigma);
  }

 private:
  DdpmOptions o_;
  diffusion::NoiseSchedule schedule_;
  diffusion::Prediction prediction_;
  std::optional<diffusion::LossAwareSampler> sampler_;
};

}  // namespace

std::vector<ModelEntry> ddpm_entries() {
  ModelEntry e;
  e.name = "ddpm";
  e.family = "diffusion";
  e.description =
      "denoising diffusion (Ho et al. 2020), class-conditional with classifier-free guidance";
  e.config_keys = score::denoiser_model_keys(ddpm_keys().keys());
  // Tuned for the README's 15-minute CPU run on Fashion-MNIST.
  e.defaults = score::denoiser_model_defaults();
  e.create = [](const Config& c, const DataInfo& info) -> std::unique_ptr<Model> {
    return std::make_unique<Ddpm>(c, info);
  };
  return {e};
}

}  // namespace gm
