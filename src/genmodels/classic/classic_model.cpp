#include "genmodels/classic/classic_model.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>

#include "genmodels/classic/gda.h"
#include "genmodels/classic/naive_bayes.h"
#include "genmodels/core/error.h"
#include "genmodels/metrics/bits_per_dim.h"
#include "genmodels/train/checkpoint.h"

namespace gm {

torch::Tensor classic_features(const data::Dataset& d, PixelFeatures mode, uint64_t seed) {
  if (!d.is_image()) return d.x.reshape({d.size(), -1}).to(torch::kFloat32);
  torch::Tensor k = ((d.x.reshape({d.size(), -1}) + 1.0) * 127.5).round().clamp(0, 255);
  switch (mode) {
    case PixelFeatures::Scaled:
      return k / 255.0;
    case PixelFeatures::BinCentre:
      return (k + 0.5) / 256.0;
    case PixelFeatures::Dequantized: {
      at::Generator gen = at::detail::createCPUGenerator(seed);
      return (k + at::rand(k.sizes(), gen, torch::kFloat32)) / 256.0;
    }
  }
  return k;
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class ClassicModel : public Model {
 public:
  ClassicModel(std::string name, std::shared_ptr<classic::GenerativeClassifier> clf, DataInfo info,
               bool dequantize, bool binary)
      : name_(std::move(name)),
        clf_(std::move(clf)),
        info_(std::move(info)),
        dequantize_(dequantize),
        binary_(binary) {}

  torch::nn::Module& module() override { return *clf_; }

  // Fitted in closed form: no optimizer, no steps.
  void train_step(const data::Batcher::Batch&, train::StepContext&) override {
    throw Error(name_ + " is fitted in closed form; it has no train step");
  }

  // Fits on the training split in one call, scores the test split, saves the run.
  Json train(TrainSession& s) override {
    if (s.resume)
      throw Error("--resume: " + name_ + " is fitted in closed form; there is nothing to resume");
    if (const char* world = std::getenv("WORLD_SIZE"); world && std::atoi(world) > 1)
      throw Error(name_ +
                  " is fitted in closed form in one pass; data-parallel training "
                  "(--nproc, torchrun) is for the gradient-trained models");
    const data::Dataset test = s.load_test();
    const Json report = fit(s.train, test, s.seed);  // a failed fit leaves no run behind
    std::cerr << "genmodels: fitted " << name_ << " on " << info_.dataset << " (" << s.train.size()
              << " examples, " << test.size() << " test); run " << s.run.path() << "\n";
    s.save_config();
    train::save_weights(s.run.checkpoint(), module(), s.meta);
    // A first look at the density: one column per class.
    SampleRequest req;
    req.n = info_.num_classes() > 0 ? 6 * info_.num_classes() : 2000;
    req.seed = s.seed;
    SampleResult r = sample(req);
    r.params["model"] = name_;
    write_sample_image(s.run.figure("fit.png"), r);
    return report;
  }

  Json fit(const data::Dataset& train, const data::Dataset& test, uint64_t seed) {
    const bool image = train.is_image();
    const PixelFeatures fit_mode =
        image && dequantize_ && !binary_ ? PixelFeatures::Dequantized : PixelFeatures::Scaled;
    const PixelFeatures eval_mode =
        fit_mode == PixelFeatures::Dequantized ? PixelFeatures::BinCentre : PixelFeatures::Scaled;
    torch::Tensor xtr = classic_features(train, fit_mode, seed);
    auto t0 = std::chrono::steady_clock::now();
    clf_->fit(xtr, train.y);
    const double fit_s = seconds_since(t0);

    torch::Tensor xte = classic_features(test, eval_mode);
    t0 = std::chrono::steady_clock::now();
    torch::Tensor pred = clf_->predict(xte);
    const double predict_s = seconds_since(t0);
    const double acc = pred.eq(test.y).to(torch::kFloat64).mean().item<double>();

    Json r = {{"model", name_},
              {"train_examples", train.size()},
              {"test_examples", test.size()},
              {"features", clf_->dims()},
              {"test_accuracy", acc},
              {"fit_seconds", fit_s},
              {"predict_seconds", predict_s}};
    const Json density = likelihood(test, xte, seed);
    for (const auto& [key, v] : density.items())
      if (key != "n") r["test_" + key] = v;
    if (auto* gda = dynamic_cast<classic::Gda*>(clf_.get());
        gda && gda->options().shared_covariance)
      r["shrinkage_mean"] = gda->shrinkage().mean().item<double>();
    return r;
  }

  Json test_likelihood(const data::Dataset& test, int64_t n, int64_t, uint64_t seed) override {
    const data::Dataset part = n > 0 && n < test.size()
                                   ? data::Dataset{test.name, test.x.narrow(0, 0, n),
                                                   test.y.narrow(0, 0, n), test.class_names}
                                   : test;
    const PixelFeatures mode = part.is_image() && dequantize_ && !binary_ ? PixelFeatures::BinCentre
                                                                          : PixelFeatures::Scaled;
    return likelihood(part, classic_features(part, mode), seed);
  }

  SampleResult sample(const SampleRequest& req) override {
    torch::NoGradGuard no_grad;
    const int64_t K = clf_->num_classes(), n = req.n;
    if (req.class_label >= K)
      throw Error("--class " + std::to_string(req.class_label) + " is outside [0, " +
                  std::to_string(K) + ")");
    torch::Tensor labels = req.class_label >= 0 ? torch::full({n}, req.class_label, torch::kInt64)
                                                : torch::arange(n, torch::kInt64) % K;
    at::Generator gen = at::detail::createCPUGenerator(req.seed);
    torch::Tensor f = torch::empty({n, clf_->dims()}, torch::kFloat64);
    for (int64_t k = 0; k < K; ++k) {
      torch::Tensor idx = labels.eq(k).nonzero().squeeze(1);
      if (idx.numel() > 0) f.index_copy_(0, idx, clf_->sample(idx.numel(), k, gen));
      if (req.progress) req.progress(k + 1, K);
    }
    SampleResult res;
    res.labels = labels;
    res.params = {{"seed", std::to_string(req.seed)}};
    if (!info_.is_image()) {
      res.x = f.to(torch::kFloat32);
      return res;
    }
    // Features back to pixel levels, then to genmodels' [-1, 1] images.
    torch::Tensor k = binary_ ? f * 255.0 : dequantize_ ? f * 256.0 - 0.5 : f * 255.0;
    std::vector<int64_t> shape = {n};
    shape.insert(shape.end(), info_.shape.begin(), info_.shape.end());
    res.x = (k.clamp(0, 255) / 127.5 - 1.0).to(torch::kFloat32).reshape(shape);
    return res;
  }

 private:
  // Test log-likelihood: `xte` are the evaluation features (used for discrete and vector data);
  // image densities are evaluated at uniformly dequantised pixels (metrics/bits_per_dim.h).
  Json likelihood(const data::Dataset& test, const torch::Tensor& xte, uint64_t seed) const {
    const int64_t D = clf_->dims();
    Json r = {{"n", test.size()}};
    if (binary_) {
      // Probability mass of the binarised test images: bits per binary dimension.
      const double nll = -clf_->log_marginal(xte).mean().item<double>();
      r["nll_nats"] = nll;
      r["bits_per_binary_dim"] = metrics::bits_per_dim(nll, D);
    } else if (test.is_image()) {
      // The bin width is 1/256 for dequantised features and 1/255 for scaled ones.
      torch::Tensor k = classic_features(test, PixelFeatures::Dequantized, seed + 1) * 256.0;
      const double width = dequantize_ ? 1.0 / 256.0 : 1.0 / 255.0;
      torch::Tensor xd = k * width;
      const double nll = -clf_->log_marginal(xd).mean().item<double>();
      const double range = 256.0 * width;
      r["nll_nats"] = nll;
      r["bits_per_dim"] = metrics::bits_per_dim_dequantised(nll, D, range);
      torch::Tensor cond = clf_->class_log_likelihood(xd).gather(1, test.y.unsqueeze(1));
      r["conditional_bits_per_dim"] =
          metrics::bits_per_dim_dequantised(-cond.mean().item<double>(), D, range);
    } else {
      r["nll_nats"] = -clf_->log_marginal(xte).mean().item<double>();
    }
    return r;
  }

  std::string name_;
  std::shared_ptr<classic::GenerativeClassifier> clf_;
  DataInfo info_;
  bool dequantize_, binary_;
};

int64_t feature_count(const DataInfo& info) {
  int64_t d = 1;
  for (int64_t s : info.shape) d *= s;
  return d;
}

void require_labels(const std::string& name, const DataInfo& info) {
  if (info.num_classes() < 2)
    throw Error(name + " is a classifier and needs labelled data with at least 2 classes; " +
                info.dataset + " has " + std::to_string(info.num_classes()));
}

// The model.* settings of the four classifiers; each reads the rows of its classic_keys().
struct ClassicOptions {
  std::string priors = "fitted";   ///< model.priors
  bool dequantize = true;          ///< model.dequantize
  std::string shrinkage = "auto";  ///< model.shrinkage (lda)
  double reg_param = 0.05;         ///< model.reg_param (qda)
  double var_smoothing = 1e-9;     ///< model.var_smoothing (gnb)
  double binarize = 0.5;           ///< model.binarize (bnb)
  double alpha = 1.0;              ///< model.alpha (bnb)
};

KeyTable<ClassicOptions> classic_keys(const std::string& name) {
  using O = ClassicOptions;
  KeyTable<O> t;
  t.add("model.priors", &O::priors, "class priors: fitted, uniform or p1,p2,... (one per class)");
  if (name != "bnb")
    t.add("model.dequantize", &O::dequantize,
          "fit on uniformly dequantised pixels (k + u) / 256 (a proper density for bits/dim); "
          "false: k / 255");
  if (name == "lda")
    t.add("model.shrinkage", &O::shrinkage,
          "covariance shrinkage: none, auto (Ledoit-Wolf) or a value in [0,1]");
  if (name == "qda")
    t.add("model.reg_param", &O::reg_param, "covariance regularisation (1-r) C + r I");
  if (name == "gnb")
    t.add("model.var_smoothing", &O::var_smoothing,
          "added variance, as a fraction of the largest feature variance");
  if (name == "bnb") {
    t.add("model.binarize", &O::binarize, "feature threshold in [0,1]: x > t is 1");
    t.add("model.alpha", &O::alpha, "Lidstone smoothing (1 = Laplace)");
  }
  return t;
}

std::unique_ptr<Model> create_classic(const std::string& name, const Config& c,
                                      const DataInfo& info) {
  require_labels(name, info);
  const ClassicOptions o = classic_keys(name).read(c);
  const auto priors = classic::parse_priors(o.priors);
  const int64_t K = info.num_classes(), D = feature_count(info);
  if (name == "gnb")
    return std::make_unique<ClassicModel>(
        name, std::make_shared<classic::GaussianNaiveBayes>(K, D, o.var_smoothing, priors), info,
        o.dequantize, false);
  if (name == "bnb")
    return std::make_unique<ClassicModel>(
        name, std::make_shared<classic::BernoulliNaiveBayes>(K, D, o.binarize, o.alpha, priors),
        info, false, true);
  classic::GdaOptions g;
  g.shared_covariance = name == "lda";
  g.priors = priors;
  if (g.shared_covariance) {
    if (o.shrinkage == "auto") {
      g.shrinkage_auto = true;
    } else if (o.shrinkage != "none") {
      char* end = nullptr;
      g.shrinkage = std::strtod(o.shrinkage.c_str(), &end);
      if (o.shrinkage.empty() || *end != '\0')
        throw Error("model.shrinkage: '" + o.shrinkage +
                    "' is not none, auto or a number in [0, 1]");
    }
  } else {
    g.reg_param = o.reg_param;
  }
  return std::make_unique<ClassicModel>(name, std::make_shared<classic::Gda>(K, D, g), info,
                                        o.dequantize, false);
}

}  // namespace

std::vector<ModelEntry> classic_entries() {
  const std::vector<std::pair<std::string, std::string>> models = {
      {"lda", "linear discriminant analysis: Gaussian classes, shared covariance"},
      {"qda", "quadratic discriminant analysis: Gaussian classes, own covariances"},
      {"gnb", "Gaussian naive Bayes: independent Gaussian features per class"},
      {"bnb", "Bernoulli naive Bayes: binarised pixels, independent per class"},
  };
  std::vector<ModelEntry> out;
  for (const auto& [name, doc] : models) {
    ModelEntry e;
    e.name = name;
    e.family = "classic";
    e.description = doc;
    e.config_keys = classic_keys(name).keys();
    e.create = [name = name](const Config& c, const DataInfo& info) {
      return create_classic(name, c, info);
    };
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace gm
