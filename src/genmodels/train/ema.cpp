#include "genmodels/train/ema.h"

#include <algorithm>

#include "genmodels/core/error.h"

namespace gm::train {

Ema::Ema(torch::nn::Module& module, double decay, bool warmup) : decay_(decay), warmup_(warmup) {
  if (decay < 0 || decay >= 1)
    throw Error("train.ema_decay must be in [0, 1), got " + std::to_string(decay));
  torch::NoGradGuard no_grad;
  for (const auto& p : module.named_parameters()) {
    names_.push_back(p.key());
    shadow_.push_back(p.value().detach().clone());
  }
}

double Ema::decay_at(int64_t n) const {
  return warmup_ ? std::min(decay_, (1.0 + n) / (10.0 + n)) : decay_;
}

void Ema::update(torch::nn::Module& module, int64_t num_updates) {
  torch::NoGradGuard no_grad;
  const double d = decay_at(num_updates);
  auto params = module.parameters();
  for (size_t i = 0; i < shadow_.size(); ++i) shadow_[i].mul_(d).add_(params[i].detach(), 1.0 - d);
}

void Ema::copy_to(torch::nn::Module& module) const {
  torch::NoGradGuard no_grad;
  auto params = module.parameters();
  for (size_t i = 0; i < shadow_.size(); ++i) params[i].copy_(shadow_[i]);
}

void Ema::save(torch::serialize::OutputArchive& archive) const {
  for (size_t i = 0; i < shadow_.size(); ++i) archive.write(names_[i], shadow_[i]);
}

void Ema::load(torch::serialize::InputArchive& archive) {
  for (size_t i = 0; i < shadow_.size(); ++i) {
    torch::Tensor t;
    archive.read(names_[i], t);
    shadow_[i] = t;
  }
}

EmaScope::EmaScope(torch::nn::Module& module, const Ema& ema) : module_(module) {
  for (const auto& p : module.parameters()) saved_.push_back(p.detach().clone());
  ema.copy_to(module);
}

EmaScope::~EmaScope() {
  torch::NoGradGuard no_grad;
  auto params = module_.parameters();
  for (size_t i = 0; i < saved_.size(); ++i) params[i].copy_(saved_[i]);
}

}  // namespace gm::train
