// Bits per dimension for likelihood models, with the dequantisation convention that puts flows,
// VAEs, diffusion bounds and GDA densities into one table (Theis et al. 2016, "A note on the
// evaluation of generative models", sec. 3.1; Uria et al. 2013; Ho et al. 2019, Flow++, sec. 3.1).
//
// Convention (uniform dequantisation of 8-bit pixels, 256 bins). A pixel k in {0..255} becomes a
// continuous value by adding u ~ U[0,1) and rescaling to the model's range of width R:
//   [0,1]:  x = (k + u) / 256            (R = 1, bin width 1/256)
//   [-1,1]: x = 2 (k + u) / 256 - 1      (R = 2, bin width 2/256; genmodels' image convention)
// The discrete model P(k) = integral of p over k's bin, and by Jensen
//   log P(k) >= E_u[log p(x)] + D log(R / 256),
// so the reported discrete NLL (an upper bound) is  -log p(x) + D log(256 / R)  nats per example,
// and bits/dim = that / (D ln 2). For [-1,1] data the correction is + D log 128.
// Models with a discrete decoder (e.g. a VAE's or DDPM's discretised Gaussian) already give -log
// P(k): pass their NLL straight to bits_per_dim without the correction.
#pragma once
#include <cstdint>

namespace gm::metrics {

/// bpd = nll / (D ln 2) for an NLL in nats per example over D dimensions.
double bits_per_dim(double nll_nats_per_example, int64_t dims);

/// Discrete NLL bound from a continuous density on data of range width R: -log p(x) + D log(256/R).
double dequantised_nll(double continuous_nll_nats_per_example, int64_t dims, double range = 2.0);

/// bits_per_dim(dequantised_nll(nll, D, R), D): bpd of a continuous density under the convention.
double bits_per_dim_dequantised(double continuous_nll_nats_per_example, int64_t dims,
                                double range = 2.0);

}  // namespace gm::metrics
