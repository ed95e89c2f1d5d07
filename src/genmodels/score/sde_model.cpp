// Registry entry "sde": a score model trained in continuous time on the VE, VP or sub-VP SDE (Song
// et al. 2021), sampled by any sampler through the discretised VP-equivalent schedule (sde.h).
#include <memory>

#include "genmodels/core/error.h"
#include "genmodels/score/denoiser_model.h"
#include "genmodels/score/score_models.h"
#include "genmodels/score/sde.h"

namespace gm::score {
namespace {

struct SdeModelOptions {
  std::string sde = "vp";             ///< model.sde
  double beta_min = 0.1;              ///< sde.beta_min
  double beta_max = 20.0;             ///< sde.beta_max
  double sigma_min = 0.01;            ///< sde.sigma_min
  double sigma_max = 50.0;            ///< sde.sigma_max
  bool likelihood_weighting = false;  ///< sde.likelihood_weighting
  int64_t grid = 1000;                ///< sde.grid
  double class_dropout = 0.1;         ///< diffusion.class_dropout
};

const KeyTable<SdeModelOptions>& sde_keys() {
  using O = SdeModelOptions;
  static const KeyTable<O> table = [] {
    KeyTable<O> t;
    t.add("model.sde", &O::sde, "forward SDE (Song et al. 2021 Sec. 3.4)", sde_names());
    t.add("sde.beta_min", &O::beta_min, "VP / sub-VP: beta(0)");
    t.add("sde.beta_max", &O::beta_max, "VP / sub-VP: beta(1)");
    t.add("sde.sigma_min", &O::sigma_min, "VE: sigma(0)");
    t.add("sde.sigma_max", &O::sigma_max, "VE: sigma(1) (about the largest distance in the data)");
    t.add("sde.likelihood_weighting", &O::likelihood_weighting,
          "weight the loss by g(t)^2 (Song et al. 2021b) instead of s(t)^2");
    t.add("sde.grid", &O::grid, "discrete timesteps the samplers see (the schedule's T)");
    t.add("diffusion.class_dropout", &O::class_dropout,
          "label dropout for classifier-free guidance");
    return t;
  }();
  return table;
}

class SdeModel : public DenoiserModel {
 public:
  SdeModel(const Config& c, const DataInfo& info) : DenoiserModel(c, info), o_(sde_keys().read(c)) {
    SdeOptions so;
    so.beta_min = o_.beta_min;
    so.beta_max = o_.beta_max;
    so.sigma_min = o_.sigma_min;
    so.sigma_max = o_.sigma_max;
    sde_ = make_sde(o_.sde, so);
    if (o_.grid < 2)
      throw Error("sde.grid = " + std::to_string(o_.grid) + " must be >= 2 (e.g. 1000)");
    schedule_ = discretize(*sde_, o_.grid);
  }

  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) override {
    SdeLossOptions lo;
    lo.likelihood_weighting = o_.likelihood_weighting;
    lo.class_dropout = conditional_ ? o_.class_dropout : 0.0;
    lo.null_label = null_label();
    return sde_loss(net_fn(), *sde_, x, train_labels(y), lo);
  }

 protected:
  diffusion::Denoiser denoiser() override {
    return diffusion::Denoiser(index_to_time_net(net_fn(), sde_, schedule_),
                               diffusion::Prediction::Eps, schedule_);
  }

 private:
  SdeModelOptions o_;
  std::shared_ptr<const Sde> sde_;
  diffusion::NoiseSchedule schedule_;
};

}  // namespace

std::vector<ModelEntry> sde_entries() {
  ModelEntry e;
  e.name = "sde";
  e.family = "score";
  e.description =
      "score SDE (Song et al. 2021): VE / VP / sub-VP in continuous time, exact likelihood";
  e.config_keys = denoiser_model_keys(sde_keys().keys());
  // The README's 15-minute CPU recipe of ddpm. Sampling as score_sde's VP / sub-VP configs:
  // the reverse SDE by Euler-Maruyama over 1000 levels without a corrector (VE runs add the
  // Langevin corrector, sample.corrector_steps = 1 at snr 0.16; in low dimension its per-sample
  // step size is erratic: a 2-D toy's samples scatter).
  e.defaults = denoiser_model_defaults(
      {{"sample.sampler", "pc"}, {"sample.schedule", "discrete"}, {"sample.corrector_steps", "0"}});
  e.create = [](const Config& c, const DataInfo& info) -> std::unique_ptr<Model> {
    return std::make_unique<SdeModel>(c, info);
  };
  return {e};
}

}  // namespace gm::score
