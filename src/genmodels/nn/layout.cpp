#include "genmodels/nn/layout.h"

namespace gm::nn {

torch::Tensor strictly_channels_last(const torch::Tensor& x) {
  if (x.dim() != 4 || x.suggest_memory_format() == torch::MemoryFormat::ChannelsLast) return x;
  return torch::empty(x.sizes(), x.options().memory_format(torch::MemoryFormat::ChannelsLast))
      .copy_(x);
}

bool is_channels_last(const torch::Tensor& t) {
  return t.dim() == 4 && t.is_contiguous(torch::MemoryFormat::ChannelsLast) && !t.is_contiguous();
}

void set_conv_layout(torch::nn::Module& m, bool channels_last) {
  torch::NoGradGuard no_grad;
  const auto f =
      channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  for (auto& p : m.parameters()) {
    if (p.dim() != 4) continue;
    p.set_data(torch::empty(p.sizes(), p.options().memory_format(f)).copy_(p.detach()));
  }
}

bool channels_last_for(const std::string& memory_format, const torch::Device& device) {
  return memory_format == "channels_last" || (memory_format == "auto" && device.is_cpu());
}

}  // namespace gm::nn
