// Reflection padding of images (CycleGAN's ResNet generators pad every 3x3 and 7x7 convolution
// this way), forward and backward as plain row copies over each plane.
//
// Why: LibTorch 1.13's CPU reflection_pad2d and its backward run at a twentieth of a copy's
// speed on the small planes of these networks (0.11 ms each way for 16 x 128 x 7 x 7, against
// 0.006 ms to clone it); a CycleGAN train step calls them 160 times.
#pragma once
#include <torch/torch.h>

namespace gm::nn {

/// N x C x H x W -> N x C x (H + 2 pad) x (W + 2 pad), mirrored at the borders without repeating
/// the edge (torch::reflection_pad2d's definition; pad < H and pad < W). CPU contiguous tensors
/// take the fast path; others, and double backward, LibTorch's op.
torch::Tensor reflection_pad2d(const torch::Tensor& x, int64_t pad);

}  // namespace gm::nn
