// Inception-Score analogue (Salimans et al. 2016); see inception_score.h.
#include "genmodels/metrics/inception_score.h"

#include <cmath>

#include "genmodels/core/error.h"

namespace gm::metrics {

InceptionScore inception_score(const torch::Tensor& logits, int64_t splits) {
  if (logits.dim() != 2 || splits < 1 || logits.size(0) < splits)
    throw Error("inception_score: need N x C logits with N >= splits >= 1, got shape " +
                c10::str(logits.sizes()) + " and splits = " + std::to_string(splits));
  torch::Tensor logp = torch::log_softmax(logits.to(torch::kFloat64), 1);
  const int64_t n = logp.size(0);
  std::vector<double> scores;
  for (int64_t s = 0; s < splits; ++s) {
    torch::Tensor part = logp.slice(0, s * n / splits, (s + 1) * n / splits);
    torch::Tensor p = part.exp();
    torch::Tensor log_py = p.mean(0, /*keepdim=*/true).log();  // log p(y)
    // KL(p(y|x) || p(y)) = sum_y p(y|x) (log p(y|x) - log p(y)); 0 log 0 = 0 via p * (...)
    torch::Tensor kl = (p * (part - log_py)).nan_to_num(0.0).sum(1);
    scores.push_back(std::exp(kl.mean().item<double>()));
  }
  InceptionScore r;
  for (double s : scores) r.mean += s / double(splits);
  for (double s : scores) r.std += (s - r.mean) * (s - r.mean) / double(splits);
  r.std = std::sqrt(r.std);
  return r;
}

}  // namespace gm::metrics
