// Sampler registry (names and one-line descriptions).
#include "genmodels/sampling/samplers.h"

#include "genmodels/core/error.h"

namespace gm::sampling {

std::vector<std::pair<std::string, std::string>> sampler_names() {
  return {
      {"ddpm", "ancestral DDPM (Ho et al. 2020 Alg. 2), variance beta or beta-tilde, respaced"},
      {"ddim", "DDIM (Song et al. 2021 eq. 12), eta = 0 deterministic .. eta = 1 DDPM-like"},
  };
}

void check_sampler_name(const std::string& name) {
  std::string valid;
  for (const auto& [n, doc] : sampler_names()) {
    if (n == name) return;
    valid += (valid.empty() ? "" : ", ") + n;
  }
  throw Error("unknown sampler '" + name + "'; valid: " + valid);
}

}  // namespace gm::sampling
