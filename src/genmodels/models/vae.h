// Registry entry "vae": variational autoencoder / beta-VAE (vae/vae.h) on the shared trainer, with
// test ELBO and IWAE-k likelihood (`genmodels eval RUN --metrics nll`), prior samples, and after
// training a reconstructions grid, latent interpolations and (2-D latent) a latent scatter plot.
#pragma once
#include "genmodels/models/model.h"

namespace gm {

ModelEntry vae_entry();

/// Renders N x 2 points coloured by integer label (0..9 palette) as an RGB uint8 size x size x 3
/// image over [-extent, extent]^2, y up, on white.
torch::Tensor scatter_rgb(const torch::Tensor& points, const torch::Tensor& labels,
                          double extent = 3.5, int64_t size = 512);

}  // namespace gm
