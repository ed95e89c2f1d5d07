#include "genmodels/gan/image_pool.h"

namespace gm::gan {

ImagePoolImpl::ImagePoolImpl(int64_t capacity, std::vector<int64_t> shape) : capacity_(capacity) {
  std::vector<int64_t> full = {std::max<int64_t>(capacity, 0)};
  full.insert(full.end(), shape.begin(), shape.end());
  images_ = register_buffer("images", torch::zeros(full));
  count_ = register_buffer("count", torch::zeros({}, torch::kInt64));
}

torch::Tensor ImagePoolImpl::query(const torch::Tensor& images) {
  if (capacity_ <= 0) return images;
  torch::NoGradGuard no_grad;
  const torch::Tensor x = images.detach().to(images_.dtype());
  const int64_t n = x.size(0);
  torch::Tensor out = x.clone();
  int64_t count = count_.item<int64_t>();
  // One draw per image past the filling stage, made up front so the stream is fixed per call.
  const torch::Tensor u = torch::rand({n});
  const torch::Tensor slot = torch::randint(0, capacity_, {n}, torch::kInt64);
  auto ua = u.accessor<float, 1>();
  auto sa = slot.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) {
    if (count < capacity_) {
      images_[count].copy_(x[i]);
      ++count;
    } else if (ua[i] > 0.5f) {
      out[i].copy_(images_[sa[i]]);
      images_[sa[i]].copy_(x[i]);
    }
  }
  count_.fill_(count);
  return out.to(images.dtype());
}

}  // namespace gm::gan
