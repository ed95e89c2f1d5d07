// Registry entries of the score-based family: `ncsn` (Song & Ermon 2019/2020) and `sde` (Song et
// al. 2021, VE / VP / sub-VP). Both are DenoiserModels (denoiser_model.h), so every sampler of
// sampling/ and the ODE likelihood work on them.
#pragma once
#include <vector>

#include "genmodels/family/model.h"

namespace gm::score {

std::vector<ModelEntry> ncsn_entries();
std::vector<ModelEntry> sde_entries();

}  // namespace gm::score
