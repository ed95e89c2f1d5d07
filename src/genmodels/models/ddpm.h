// Registry entry "ddpm": a class-conditional denoising diffusion model (Ho et al. 2020) with
// classifier-free guidance (Ho & Salimans 2022), a U-Net for images and a time MLP for 2-D toys,
// sampled by any sampler in sampling/ (DDPM ancestral, DDIM).
#pragma once
#include "genmodels/family/model.h"

namespace gm {

std::vector<ModelEntry> ddpm_entries();

}  // namespace gm
