// Runs a Sequential with every layer but the last under bf16 CPU autocast and the last (the
// output layer) in fp32 on an fp32 input: what `model.precision=bf16` means for the VAE's
// decoder and the flows' coupling conditioners, where the output feeds a likelihood or a
// log-determinant.
#pragma once
#include <torch/torch.h>

namespace gm::nn {

torch::Tensor forward_bf16_body(torch::nn::Sequential& seq, const torch::Tensor& x);

}  // namespace gm::nn
