// The registry: one row per family. Adding a family is its folder plus one row here.
#include "genmodels/models/registry.h"

#include "genmodels/classic/classic_model.h"
#include "genmodels/clip/clip_model.h"
#include "genmodels/core/error.h"
#include "genmodels/flow/flow_model.h"
#include "genmodels/gan/gan_model.h"
#include "genmodels/gan/translation_model.h"
#include "genmodels/models/ddpm.h"
#include "genmodels/score/score_models.h"
#include "genmodels/vae/vae_model.h"

namespace gm {

const std::vector<ModelEntry>& model_registry() {
  static const std::vector<ModelEntry> entries = [] {
    std::vector<ModelEntry> e;
    for (auto* family :
         {ddpm_entries, score::ncsn_entries, score::sde_entries, vae_entries, flow_entries,
          gan_entries, translation_entries, classic_entries, clip_entries})
      for (auto& entry : family()) e.push_back(std::move(entry));
    return e;
  }();
  return entries;
}

const ModelEntry& find_model(const std::string& name) {
  std::string names;
  for (const auto& e : model_registry()) {
    if (e.name == name) return e;
    names += (names.empty() ? "" : ", ") + e.name;
  }
  throw Error("unknown model '" + name + "'; registered models: " + names);
}

}  // namespace gm
