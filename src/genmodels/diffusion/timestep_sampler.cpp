// Loss-aware timestep sampling (Nichol & Dhariwal 2021, Sec. 3.3).
#include "genmodels/diffusion/timestep_sampler.h"

#include "genmodels/core/error.h"

namespace gm::diffusion {

LossAwareSampler::LossAwareSampler(torch::Tensor history, torch::Tensor count)
    : history_(std::move(history)), count_(std::move(count)) {
  if (history_.dim() != 2 || count_.dim() != 1 || count_.size(0) != history_.size(0))
    throw Error("LossAwareSampler: history must be T x K and count T");
}

torch::Tensor LossAwareSampler::make_history(int64_t T, int64_t K) {
  return torch::zeros({T, K}, torch::kDouble);
}
torch::Tensor LossAwareSampler::make_count(int64_t T) { return torch::zeros({T}, torch::kLong); }

bool LossAwareSampler::warmed_up() const { return (count_ >= history_.size(1)).all().item<bool>(); }

torch::Tensor LossAwareSampler::probs() const {
  const int64_t T = history_.size(0);
  if (!warmed_up()) return torch::full({T}, 1.0 / double(T), torch::kDouble);
  torch::Tensor w = history_.cpu().square().mean(1).sqrt();
  w = w / w.sum();
  constexpr double kUniform = 0.001;
  return w * (1.0 - kUniform) + kUniform / double(T);
}

std::pair<torch::Tensor, torch::Tensor> LossAwareSampler::sample(int64_t n) const {
  const torch::Tensor p = probs();
  const torch::Tensor t = torch::multinomial(p, n, /*replacement=*/true);
  const torch::Tensor w = (1.0 / (double(p.size(0)) * p.index_select(0, t))).to(torch::kFloat);
  return {t, w};
}

void LossAwareSampler::update(const torch::Tensor& t, const torch::Tensor& losses) {
  const torch::Tensor tc = t.to(torch::kCPU, torch::kLong);
  const torch::Tensor lc = losses.detach().to(torch::kCPU, torch::kDouble);
  const int64_t K = history_.size(1);
  torch::Tensor hc = history_.cpu(), cc = count_.cpu();  // the buffers themselves on the CPU
  auto h = hc.accessor<double, 2>();
  auto c = cc.accessor<int64_t, 1>();
  for (int64_t i = 0; i < tc.size(0); ++i) {
    const int64_t ti = tc[i].item<int64_t>();
    const double v = lc[i].item<double>();
    if (c[ti] < K) {
      h[ti][c[ti]] = v;
    } else {  // drop the oldest: shift left, append
      for (int64_t k = 0; k + 1 < K; ++k) h[ti][k] = h[ti][k + 1];
      h[ti][K - 1] = v;
    }
    ++c[ti];
  }
  if (!history_.is_cpu()) {
    history_.copy_(hc);
    count_.copy_(cc);
  }
}

}  // namespace gm::diffusion
