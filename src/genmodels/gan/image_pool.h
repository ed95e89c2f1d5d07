// The history pool of generated images that CycleGAN's discriminators see (Shrivastava et al.
// 2017, Sec. 2.3; Zhu et al. 2017, Sec. 4): until it holds `capacity` images every query image is
// stored and returned as is; once full, each query image is, with probability 1/2, swapped for a
// stored one drawn uniformly (the stored one is returned, the new one takes its place), and
// otherwise returned as is. The images and the fill count are module buffers, so checkpoints
// hold the pool and a resumed run continues with it; randomness comes from LibTorch's default
// generator (also checkpointed).
#pragma once
#include <torch/torch.h>

#include <vector>

namespace gm::gan {

class ImagePoolImpl : public torch::nn::Module {
 public:
  /// capacity 0 turns the pool off (query returns its input).
  ImagePoolImpl(int64_t capacity, std::vector<int64_t> image_shape);
  /// N x C x H x W (detached) -> N x C x H x W, as described above.
  torch::Tensor query(const torch::Tensor& images);
  int64_t size() const { return count_.item<int64_t>(); }
  int64_t capacity() const { return capacity_; }

 private:
  int64_t capacity_;
  torch::Tensor images_, count_;
};
TORCH_MODULE(ImagePool);

}  // namespace gm::gan
