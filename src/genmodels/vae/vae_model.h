// Registry entry "vae": variational autoencoder / beta-VAE (vae/vae.h) on the shared trainer, with
// test ELBO and IWAE-k likelihood (`genmodels eval RUN --metrics nll`), prior samples, and after
// training a reconstructions grid, latent interpolations and (2-D latent) a latent scatter plot.
#pragma once
#include "genmodels/family/model.h"

namespace gm {

std::vector<ModelEntry> vae_entries();

}  // namespace gm
