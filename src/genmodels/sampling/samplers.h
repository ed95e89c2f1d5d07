// Sampler registry and one include for every sampler (one file per sampler: ddpm, ddim).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "genmodels/sampling/ddim.h"
#include "genmodels/sampling/ddpm.h"
#include "genmodels/sampling/timesteps.h"

namespace gm::sampling {

/// Registry: {"ddpm", "ddim"} with one-line descriptions for `genmodels list`.
std::vector<std::pair<std::string, std::string>> sampler_names();

/// Throws gm::Error listing the valid sampler names unless `name` is one of them.
void check_sampler_name(const std::string& name);

}  // namespace gm::sampling
