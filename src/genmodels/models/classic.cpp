#include "genmodels/models/classic.h"

#include <chrono>
#include <cmath>

#include "genmodels/classic/gda.h"
#include "genmodels/classic/naive_bayes.h"
#include "genmodels/core/error.h"
#include "genmodels/metrics/bits_per_dim.h"

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

  torch::Tensor loss(const torch::Tensor&, const torch::Tensor&) override {
    throw Error(name_ + " is fitted in closed form; `genmodels train` calls fit()");
  }

  bool closed_form() const override { return true; }

  Json fit(const data::Dataset& train, const data::Dataset& test, uint64_t seed) override {
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

const ConfigKey kPriors = {"model.priors", ValueType::String, "fitted",
                           "class priors: fitted, uniform or p1,p2,... (one per class)"};
const ConfigKey kDequantize = {
    "model.dequantize", ValueType::Bool, "true",
    "fit on uniformly dequantised pixels (k + u) / 256 (a proper density for bits/dim); false: "
    "k / 255"};

}  // namespace

std::vector<ModelEntry> classic_entries() {
  using T = ValueType;
  std::vector<ModelEntry> out;
  auto gda_entry = [&](bool shared) {
    ModelEntry e;
    e.name = shared ? "lda" : "qda";
    e.family = "classic";
    e.description = shared ? "linear discriminant analysis: Gaussian classes, shared covariance"
                           : "quadratic discriminant analysis: Gaussian classes, own covariances";
    e.config_keys = {kPriors, kDequantize};
    if (shared)
      e.config_keys.push_back(
          {"model.shrinkage", T::String, "auto",
           "covariance shrinkage: none, auto (Ledoit-Wolf) or a value in [0,1]"});
    else
      e.config_keys.push_back(
          {"model.reg_param", T::Float, "0.05", "covariance regularisation (1-r) C + r I"});
    e.create = [shared, name = e.name](const Config& c, const DataInfo& info) {
      require_labels(name, info);
      classic::GdaOptions o;
      o.shared_covariance = shared;
      o.priors = classic::parse_priors(c.get_string("model.priors"));
      if (shared) {
        const std::string s = c.get_string("model.shrinkage");
        if (s == "auto") {
          o.shrinkage_auto = true;
        } else if (s != "none") {
          char* end = nullptr;
          o.shrinkage = std::strtod(s.c_str(), &end);
          if (s.empty() || *end != '\0')
            throw Error("model.shrinkage: '" + s + "' is not none, auto or a number in [0, 1]");
        }
      } else {
        o.reg_param = c.get_float("model.reg_param");
      }
      auto clf = std::make_shared<classic::Gda>(info.num_classes(), feature_count(info), o);
      return std::make_unique<ClassicModel>(name, clf, info, c.get_bool("model.dequantize"), false);
    };
    return e;
  };
  out.push_back(gda_entry(true));
  out.push_back(gda_entry(false));

  ModelEntry g;
  g.name = "gnb";
  g.family = "classic";
  g.description = "Gaussian naive Bayes: independent Gaussian features per class";
  g.config_keys = {kPriors,
                   kDequantize,
                   {"model.var_smoothing", T::Float, "1e-9",
                    "added variance, as a fraction of the largest feature variance"}};
  g.create = [](const Config& c, const DataInfo& info) {
    require_labels("gnb", info);
    auto clf = std::make_shared<classic::GaussianNaiveBayes>(
        info.num_classes(), feature_count(info), c.get_float("model.var_smoothing"),
        classic::parse_priors(c.get_string("model.priors")));
    return std::make_unique<ClassicModel>("gnb", clf, info, c.get_bool("model.dequantize"), false);
  };
  out.push_back(g);

  ModelEntry b;
  b.name = "bnb";
  b.family = "classic";
  b.description = "Bernoulli naive Bayes: binarised pixels, independent per class";
  b.config_keys = {kPriors,
                   {"model.binarize", T::Float, "0.5", "feature threshold in [0,1]: x > t is 1"},
                   {"model.alpha", T::Float, "1.0", "Lidstone smoothing (1 = Laplace)"}};
  b.create = [](const Config& c, const DataInfo& info) {
    require_labels("bnb", info);
    auto clf = std::make_shared<classic::BernoulliNaiveBayes>(
        info.num_classes(), feature_count(info), c.get_float("model.binarize"),
        c.get_float("model.alpha"), classic::parse_priors(c.get_string("model.priors")));
    return std::make_unique<ClassicModel>("bnb", clf, info, false, true);
  };
  out.push_back(b);
  return out;
}

}  // namespace gm
