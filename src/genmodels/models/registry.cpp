#include "genmodels/core/error.h"
#include "genmodels/models/classic.h"
#include "genmodels/models/ddpm.h"
#include "genmodels/models/flow.h"
#include "genmodels/models/model.h"
#include "genmodels/models/vae.h"
#include "genmodels/train/trainer.h"

namespace gm {

Json DataInfo::to_json() const {
  return {{"dataset", dataset}, {"shape", shape}, {"class_names", class_names}};
}

DataInfo DataInfo::from_json(const Json& j) {
  DataInfo d;
  d.dataset = j.at("dataset").get<std::string>();
  d.shape = j.at("shape").get<std::vector<int64_t>>();
  d.class_names = j.at("class_names").get<std::vector<std::string>>();
  return d;
}

const std::vector<ModelEntry>& model_registry() {
  static const std::vector<ModelEntry> entries = [] {
    std::vector<ModelEntry> e = {ddpm_entry(), vae_entry()};
    for (auto& f : flow_entries()) e.push_back(std::move(f));
    for (auto& c : classic_entries()) e.push_back(std::move(c));
    return e;
  }();
  return entries;
}

Json Model::fit(const data::Dataset&, const data::Dataset&, uint64_t) {
  throw Error("this model is trained by gradient steps, not fitted in closed form");
}

Json Model::test_likelihood(const data::Dataset&, int64_t, int64_t, uint64_t) {
  throw Error(
      "this model has no tractable likelihood (metric nll is for VAEs, flows and the "
      "generative classifiers)");
}

const ModelEntry& find_model(const std::string& name) {
  std::string names;
  for (const auto& e : model_registry()) {
    if (e.name == name) return e;
    names += (names.empty() ? "" : ", ") + e.name;
  }
  throw Error("unknown model '" + name + "'; registered models: " + names);
}

Config make_config(const ModelEntry& entry) {
  using T = ValueType;
  Config c({
      {"seed", T::Int, "0", "seed of every random generator"},
      {"device", T::String, "cpu", "cpu, cuda or cuda:N"},
      {"data.name", T::String, "fashion-mnist", "dataset (see `genmodels list`)"},
      {"data.hflip", T::Bool, "false", "random horizontal flips"},
      {"data.limit", T::Int, "0", "use only the first N training examples (0 = all)"},
      {"data.image_size", T::Int, "0", "resize images to this size (0 = native)"},
      {"data.channels", T::Int, "0", "1 or 3 to convert images (0 = native)"},
  });
  c.add_keys(train::trainer_config_keys());
  c.add_keys(entry.config_keys);
  return c;
}

}  // namespace gm
