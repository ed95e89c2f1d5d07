// Registry entries "dcgan" and "wgan-gp": generative adversarial networks (Goodfellow et al. 2014)
// on the shared trainer with two optimizers ("g" and "d", separate learning rates: TTUR, Heusel
// et al. 2017), n_critic discriminator steps per generator step, an EMA of the generator only
// (sampling uses it), class-conditional by default on labelled data (conditional BatchNorm in G,
// projection D), and the truncation trick at sampling time (Brock et al. 2019, Sec. 3.1).
#pragma once
#include "genmodels/family/model.h"

namespace gm {

std::vector<ModelEntry> gan_entries();

}  // namespace gm
