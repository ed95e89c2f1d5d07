// Registry entry "ncsn": the noise-conditional score network of Song & Ermon 2019 with NCSNv2's
// noise levels (ncsn.h), trained by denoising score matching with lambda(sigma) = sigma^2 and
// sampled by annealed Langevin dynamics (sampling/langevin.cpp) or any other sampler.
#include <cmath>
#include <iostream>

#include "genmodels/core/error.h"
#include "genmodels/core/progress.h"
#include "genmodels/diffusion/loss.h"
#include "genmodels/score/denoiser_model.h"
#include "genmodels/score/ncsn.h"
#include "genmodels/score/score_models.h"

namespace gm::score {
namespace {

struct NcsnOptions {
  double sigma_max = 0.0;      ///< ncsn.sigma_max
  double sigma_min = 0.01;     ///< ncsn.sigma_min
  int64_t num_levels = 0;      ///< ncsn.num_levels
  double class_dropout = 0.1;  ///< diffusion.class_dropout
};

const KeyTable<NcsnOptions>& ncsn_keys() {
  using O = NcsnOptions;
  static const KeyTable<O> table = [] {
    KeyTable<O> t;
    t.add("ncsn.sigma_max", &O::sigma_max,
          "largest noise level sigma_1 (0 = the largest pairwise distance in the training data, "
          "NCSNv2 technique 1, computed once and stored in the run)");
    t.add("ncsn.sigma_min", &O::sigma_min, "smallest noise level sigma_L");
    t.add("ncsn.num_levels", &O::num_levels,
          "noise levels L (0 = NCSNv2 technique 2 from the data dimension)");
    t.add("diffusion.class_dropout", &O::class_dropout,
          "label dropout for classifier-free guidance");
    return t;
  }();
  return table;
}

class Ncsn : public DenoiserModel {
 public:
  Ncsn(const Config& c, const DataInfo& info) : DenoiserModel(c, info), o_(ncsn_keys().read(c)) {
    if (o_.sigma_max < 0.0)
      throw Error("ncsn.sigma_max = " + num(o_.sigma_max) +
                  " must be > 0 (or 0 for the data's largest pairwise distance)");
    // sigma_1 lives in the checkpoint with the weights (0 until training computes it).
    sigma_1_ =
        net_->register_buffer("ncsn_sigma_max", torch::full({1}, o_.sigma_max, torch::kDouble));
    int64_t dims = 1;
    for (int64_t d : info.shape) dims *= d;
    dims_ = dims;
  }

  Json train(TrainSession& s) override {
    if (!s.resume && o_.sigma_max == 0.0) {
      Progress bar(1000, 0, "ncsn sigma_1", 10.0);
      const double d = max_pairwise_distance(s.train.x, [&](double f) {
        bar.update(static_cast<int64_t>(f * 1000), "largest pairwise distance");
      });
      bar.finish("= " + num(d) + " (largest pairwise distance of " +
                 std::to_string(s.train.size()) + " training examples)");
      sigma_1_.fill_(d);
    }
    return Model::train(s);
  }

  // NCSN's objective as the simple loss on the level schedule (see ncsn.h).
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) override {
    diffusion::LossOptions lo;
    lo.prediction = diffusion::Prediction::Eps;
    lo.class_dropout = conditional_ ? o_.class_dropout : 0.0;
    lo.null_label = null_label();
    return diffusion::diffusion_loss(net_fn(), schedule(), x, train_labels(y), lo);
  }

 protected:
  diffusion::Denoiser denoiser() override {
    return diffusion::Denoiser(net_fn(), diffusion::Prediction::Eps, schedule());
  }

 private:
  const diffusion::NoiseSchedule& schedule() {
    const double s1 = sigma_1_.item<double>();
    if (!(s1 > 0.0))
      throw Error(
          "ncsn: sigma_1 is not set (the run was not trained; ncsn.sigma_max = 0 is "
          "computed at the start of training)");
    if (s1 != built_for_) {
      schedule_ = ncsn_schedule(ncsn_sigmas(s1, o_.sigma_min, o_.num_levels, dims_));
      built_for_ = s1;
    }
    return schedule_;
  }

  NcsnOptions o_;
  torch::Tensor sigma_1_;
  int64_t dims_ = 1;
  double built_for_ = 0.0;
  diffusion::NoiseSchedule schedule_;
};

}  // namespace

std::vector<ModelEntry> ncsn_entries() {
  ModelEntry e;
  e.name = "ncsn";
  e.family = "score";
  e.description =
      "noise-conditional score network (Song & Ermon 2019, NCSNv2 levels), annealed Langevin";
  e.config_keys = denoiser_model_keys(ncsn_keys().keys());
  e.defaults =
      denoiser_model_defaults({{"sample.sampler", "langevin"}, {"sample.schedule", "discrete"}});
  e.create = [](const Config& c, const DataInfo& info) -> std::unique_ptr<Model> {
    return std::make_unique<Ncsn>(c, info);
  };
  return {e};
}

}  // namespace gm::score
