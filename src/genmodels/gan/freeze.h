// Turns off requires_grad of a module's parameters for a scope (restored on exit, also on throw):
// the discriminator during a generator step, whose backward then stops at D's input gradient
// instead of also computing weight gradients the next D step would zero.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace gm::gan {

class FreezeScope {
 public:
  explicit FreezeScope(const std::vector<torch::nn::Module*>& modules) {
    for (auto* m : modules)
      for (auto& p : m->parameters())
        if (p.requires_grad()) params_.push_back(p.requires_grad_(false));
  }
  explicit FreezeScope(torch::nn::Module& m) : FreezeScope(std::vector<torch::nn::Module*>{&m}) {}
  ~FreezeScope() {
    for (auto& p : params_) p.requires_grad_(true);
  }
  FreezeScope(const FreezeScope&) = delete;
  FreezeScope& operator=(const FreezeScope&) = delete;

 private:
  std::vector<torch::Tensor> params_;
};

}  // namespace gm::gan
