#include "genmodels/models/ddpm.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <tuple>

#include "genmodels/core/error.h"
#include "genmodels/core/progress.h"
#include "genmodels/diffusion/loss.h"
#include "genmodels/diffusion/schedule.h"
#include "genmodels/diffusion/timestep_sampler.h"
#include "genmodels/diffusion/vlb.h"
#include "genmodels/models/run.h"
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
  std::string text_encoder;          ///< model.text_encoder
};

const KeyTable<DdpmOptions>& ddpm_keys() {
  using O = DdpmOptions;
  static const KeyTable<O> table = [] {
    KeyTable<O> t;
    t.add("diffusion.schedule", &O::schedule, "noise schedule", {"linear", "cosine"});
    t.add("diffusion.timesteps", &O::timesteps, "diffusion steps T");
    t.add("diffusion.prediction", &O::prediction, "network target", {"eps", "x0", "v"});
    t.add("diffusion.class_dropout", &O::class_dropout,
          "label (or caption) dropout for classifier-free guidance");
    t.add("diffusion.learn_sigma", &O::learn_sigma,
          "learn the reverse variances, hybrid loss (Nichol & Dhariwal 2021, Sec. 3.1)");
    t.add("diffusion.vlb_weight", &O::vlb_weight, "lambda of L_hybrid = L_simple + lambda L_vlb");
    t.add("diffusion.importance_sampling", &O::importance_sampling,
          "sample t by L_vlb's second moment, weighting L_vlb (Nichol & Dhariwal 2021, eq. 18)");
    t.add("model.text_encoder", &O::text_encoder,
          "a clip run: condition on its text features of captions instead of classes "
          "(text-to-image; sample --prompt TEXT --guidance W)");
    return t;
  }();
  return table;
}

// The clip run named by model.text_encoder (null when empty) and the size of its features.
struct TextEncoder {
  std::shared_ptr<Model> model;
  int64_t dim = 0;
};

TextEncoder load_text_encoder(const Config& c) {
  const std::string run = ddpm_keys().read(c).text_encoder;
  if (run.empty()) return {};
  TextEncoder t;
  try {
    t.model = load_trained_model(run);
  } catch (const Error& e) {
    throw Error("model.text_encoder = " + run + ": " + e.what() +
                " (it must name a trained clip run)");
  }
  try {
    t.dim = t.model->text_features({"a"}).size(1);
  } catch (const Error&) {
    throw Error("model.text_encoder = " + run + " is not a clip run (it encodes no text)");
  }
  return t;
}

class Ddpm : public score::DenoiserModel {
 public:
  Ddpm(const Config& c, const DataInfo& info) : Ddpm(c, info, load_text_encoder(c)) {}

  Ddpm(const Config& c, const DataInfo& info, TextEncoder text)
      : DenoiserModel(c, info, ddpm_keys().read(c).learn_sigma ? 2 : 1, text.dim),
        text_(std::move(text.model)),
        text_dim_(text.dim),
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
      // One buffer at a time: register_buffer returns a reference into the module's buffer
      // table, which the next registration may reallocate (AddressSanitizer caught the use
      // after free when both references were passed together).
      const int64_t T = schedule_.num_steps();
      torch::Tensor history =
          net_->register_buffer("vlb_history", diffusion::LossAwareSampler::make_history(T));
      torch::Tensor count =
          net_->register_buffer("vlb_count", diffusion::LossAwareSampler::make_count(T));
      sampler_.emplace(history, count);
    }
  }

  // The simple loss (diffusion/loss.h); with learned variances L_hybrid = L_simple + lambda T
  // E_t[L_t] (Nichol & Dhariwal 2021, Sec. 3.1: L_vlb = sum_t L_t), t optionally importance-
  // sampled (Sec. 3.3) with the weights 1 / (T p_t) on the L_vlb term only, which keeps it an
  // unbiased estimate of L_vlb; L_simple is taken at the same t unweighted (improved-diffusion
  // weights the whole loss, which on a 2-D toy at T = 200 tripled the sample distance: the
  // weights of rarely drawn, noisy t's swamp L_simple).
  // Text conditioning: the caption's features, dropped to the zero embedding at
  // diffusion.class_dropout as labels are.
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) override {
    diffusion::LossOptions lo;
    lo.prediction = prediction_;
    lo.class_dropout = conditional_ || text_ ? o_.class_dropout : 0.0;
    lo.null_label = null_label();
    lo.learned_variance = o_.learn_sigma;
    const torch::Tensor cond = text_ ? caption_features(x, y) : train_labels(y);
    if (!o_.learn_sigma) return diffusion::diffusion_loss(net_fn(), schedule_, x, cond, lo);
    torch::Tensor t, w;
    if (sampler_) std::tie(t, w) = sampler_->sample(x.size(0));
    const auto terms = diffusion::diffusion_loss_terms(net_fn(), schedule_, x, cond, lo, t);
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

  // A caption folder brings its own captions (the batch's y indexes them); labelled images are
  // captioned by the clip run as it was trained.
  Json train(TrainSession& s) override {
    captions_ = s.train.captions;
    if (text_ && captions_.empty() &&
        (info_.num_classes() == 0 ||
         text_->caption_images(s.train.x.narrow(0, 0, 1), s.train.y.narrow(0, 0, 1), 0).empty()))
      throw Error("model.text_encoder = " + o_.text_encoder + ": " + info_.dataset +
                  " has no captions and the clip run cannot caption it (it was trained on a "
                  "caption folder); train on captions:DIR or with a clip run of labelled data");
    return DenoiserModel::train(s);
  }

 protected:
  diffusion::Denoiser denoiser() override {
    return diffusion::Denoiser(net_fn(), prediction_, schedule_, o_.learn_sigma);
  }

  // --prompt for every sample; else each class's prompt (the requested class, or every class in
  // turn) when the clip run can name the classes; else the null (unconditional) embedding.
  void condition(const SampleRequest& r, sampling::SampleJob& job, SampleResult& res) override {
    if (!text_) return DenoiserModel::condition(r, job, res);
    std::vector<std::string> prompts;
    if (!r.prompt.empty()) {
      if (r.class_label >= 0)
        throw Error("--prompt and --class: give one (a text-conditional run draws the prompt)");
      prompts.assign(r.n, r.prompt);
      res.params["prompt"] = r.prompt;
    } else if (info_.num_classes() > 0 && !text_->class_prompt(0).empty()) {
      res.labels = request_labels(r, info_.num_classes(), true);
      const int64_t* l = res.labels.data_ptr<int64_t>();
      for (int64_t i = 0; i < r.n; ++i) prompts.push_back(text_->class_prompt(l[i]));
      res.params["prompt"] = r.class_label >= 0
                                 ? text_->class_prompt(r.class_label)
                                 : "per class (\"" + text_->class_prompt(0) + "\", ...)";
    } else if (r.class_label >= 0) {
      throw Error("--class: this text-conditional run has no class prompts; give --prompt TEXT");
    }
    job.cond.null_embedding =
        torch::zeros({1, text_dim_}, torch::dtype(torch::kFloat).device(device_));
    if (prompts.empty()) return;
    // Each distinct prompt encoded once.
    std::vector<std::string> distinct;
    std::vector<int64_t> index;
    for (const auto& p : prompts) {
      auto it = std::find(distinct.begin(), distinct.end(), p);
      index.push_back(it - distinct.begin());
      if (it == distinct.end()) distinct.push_back(p);
    }
    job.cond.embedding =
        text_->text_features(distinct).index_select(0, torch::tensor(index)).to(device_);
    res.params["text_encoder"] = o_.text_encoder;
  }

 private:
  // Features of one caption per image: the data's own captions, or the clip run's captions of
  // the labelled images, drawn from a seed taken from LibTorch's generator (a resumed run draws
  // the same).
  torch::Tensor caption_features(const torch::Tensor& x, const torch::Tensor& y) {
    std::vector<std::string> caps;
    if (!captions_.empty()) {
      const torch::Tensor idx = y.cpu().to(torch::kLong).contiguous();
      for (int64_t i = 0; i < idx.numel(); ++i)
        caps.push_back(captions_.at(static_cast<size_t>(idx.data_ptr<int64_t>()[i])));
    } else {
      const auto seed = static_cast<uint64_t>(
          torch::randint(0, std::numeric_limits<int64_t>::max(), {1}, torch::kLong)
              .item<int64_t>());
      caps = text_->caption_images(x.cpu(), y.cpu(), seed);
    }
    return text_->text_features(caps).to(x.device());
  }

  std::shared_ptr<Model> text_;        ///< the clip run of model.text_encoder, or null
  int64_t text_dim_;                   ///< its feature size (0 without one)
  std::vector<std::string> captions_;  ///< captions:DIR data: the training captions
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
