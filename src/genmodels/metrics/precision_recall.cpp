// k-NN manifold precision and recall (Kynkaanniemi et al. 2019); see precision_recall.h.
#include "genmodels/metrics/precision_recall.h"

#include "genmodels/core/error.h"
#include "genmodels/core/progress.h"

namespace gm::metrics {

torch::Tensor knn_radii(const torch::Tensor& features, int64_t k, int64_t batch,
                        Progress* progress) {
  if (features.dim() != 2 || k < 1 || features.size(0) <= k || batch < 1)
    throw Error("knn_radii: need N x F features with N > k >= 1, got shape " +
                c10::str(features.sizes()) + " and k = " + std::to_string(k));
  torch::Tensor f = features.to(torch::kFloat64).contiguous();
  const int64_t n = f.size(0);
  std::vector<torch::Tensor> radii;
  for (int64_t i = 0; i < n; i += batch) {
    torch::Tensor d = torch::cdist(f.slice(0, i, std::min(n, i + batch)), f);
    // the k+1 smallest distances include the sample itself (0): the last is the k-th neighbour
    radii.push_back(std::get<0>(d.topk(k + 1, 1, /*largest=*/false, /*sorted=*/true)).select(1, k));
    if (progress) progress->advance(d.size(0), "rows");
  }
  return torch::cat(radii);
}

double manifold_coverage(const torch::Tensor& queries, const torch::Tensor& manifold,
                         const torch::Tensor& manifold_radii, int64_t batch, Progress* progress) {
  if (queries.dim() != 2 || manifold.dim() != 2 || queries.size(1) != manifold.size(1) ||
      manifold_radii.numel() != manifold.size(0))
    throw Error("manifold_coverage: need N x F queries and M x F manifold with M radii, got " +
                c10::str(queries.sizes()) + ", " + c10::str(manifold.sizes()) + ", " +
                c10::str(manifold_radii.sizes()));
  if (queries.size(0) == 0) return 0.0;
  torch::Tensor q = queries.to(torch::kFloat64).contiguous();
  torch::Tensor m = manifold.to(torch::kFloat64).contiguous();
  torch::Tensor r = manifold_radii.to(torch::kFloat64).reshape({1, -1});
  int64_t inside = 0;
  for (int64_t i = 0; i < q.size(0); i += batch) {
    torch::Tensor d = torch::cdist(q.slice(0, i, std::min(q.size(0), i + batch)), m);
    inside += d.le(r).any(1).sum().item<int64_t>();
    if (progress) progress->advance(d.size(0), "rows");
  }
  return double(inside) / double(q.size(0));
}

PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& fake, int64_t k,
                                 int64_t batch) {
  if (real.dim() != 2 || fake.dim() != 2 || real.size(1) != fake.size(1))
    throw Error("precision_recall: need real and fake N x F features with the same F, got " +
                c10::str(real.sizes()) + " and " + c10::str(fake.sizes()));
  PrecisionRecall pr;
  Progress bar(2 * (real.size(0) + fake.size(0)), 0, "pr", 10.0, /*delay_s=*/1.0);
  pr.precision = manifold_coverage(fake, real, knn_radii(real, k, batch, &bar), batch, &bar);
  pr.recall = manifold_coverage(real, fake, knn_radii(fake, k, batch, &bar), batch, &bar);
  bar.finish("");
  return pr;
}

}  // namespace gm::metrics
