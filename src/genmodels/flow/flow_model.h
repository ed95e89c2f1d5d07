// Registry entries "realnvp" and "glow": normalizing flows (flow/flow.h) trained by maximum
// likelihood on the shared trainer. Images are dequantised ((k + u) / 256) with uniform noise u,
// or with noise from a learned q(u | k) trained jointly (model.dequantization=variational,
// Flow++, flow/dequantizer.h), and either mapped to [-1, 1] or logit pre-processed; the loss is
// bits/dim (an upper bound on the discrete NLL, metrics/bits_per_dim.h). Sampling takes a
// temperature; after training a temperature grid (images) or a density heat-map (2-D toys) is
// written. `genmodels eval RUN --metrics nll`.
#pragma once
#include "genmodels/family/model.h"

namespace gm {

std::vector<ModelEntry> flow_entries();

}  // namespace gm
