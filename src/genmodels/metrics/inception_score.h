// Inception-Score analogue with the Fashion-MNIST domain classifier in place of Inception-v3
// (Salimans et al. 2016, "Improved Techniques for Training GANs", section 4):
// IS = exp(E_x KL(p(y|x) || p(y))), computed per split and reported as mean and std.
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace gm::metrics {

struct InceptionScore {
  double mean = 0;
  double std = 0;
};

/// exp(mean_x sum_y p(y|x) (log p(y|x) - log p(y))) with p(y) the split's mean of p(y|x), over
/// `splits` consecutive splits of the N x C logits; std is the population std over splits.
InceptionScore inception_score(const torch::Tensor& logits, int64_t splits = 10);

}  // namespace gm::metrics
