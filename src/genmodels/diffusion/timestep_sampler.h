// Importance sampling of the timestep for L_vlb (Nichol & Dhariwal 2021, "Improved DDPM", Sec.
// 3.3, eq. 18): L_vlb = E_{t ~ p_t}[L_t / p_t] with p_t proportional to sqrt(E[L_t^2]), E
// estimated from the last K values of each L_t; uniform until every t has K values, and mixed
// with 0.001 of the uniform distribution (as improved-diffusion does) so no t starves.
// The history lives in tensors the caller registers as buffers, so checkpoints keep it and a
// resumed run samples exactly as the uninterrupted one.
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace gm::diffusion {

class LossAwareSampler {
 public:
  /// history: float64 T x K (the last K values of each L_t); count: int64 T (values recorded).
  LossAwareSampler(torch::Tensor history, torch::Tensor count);
  /// Fresh buffers for T timesteps and K values each.
  static torch::Tensor make_history(int64_t T, int64_t K = 10);
  static torch::Tensor make_count(int64_t T);

  bool warmed_up() const;
  /// p_t (float64 T): uniform before warm-up.
  torch::Tensor probs() const;
  /// n timesteps from p_t (torch's default generator) and the weights 1 / (T p_t) (float N).
  std::pair<torch::Tensor, torch::Tensor> sample(int64_t n) const;
  /// Records per-row losses L_t (N) at timesteps t (int64 N).
  void update(const torch::Tensor& t, const torch::Tensor& losses);

 private:
  torch::Tensor history_, count_;
};

}  // namespace gm::diffusion
