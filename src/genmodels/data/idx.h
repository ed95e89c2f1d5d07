// IDX files (the MNIST / Fashion-MNIST format), raw or gzipped, and MNIST-style folder splits.
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>

namespace gm::data {

/// Reads an IDX file (raw or .gz, detected by the gzip magic 1f 8b) as a uint8 tensor with the
/// file's dims. Throws gm::Error for a missing file, bad magic, truncated data or a non-uint8
/// dtype.
torch::Tensor read_idx(const std::string& path);

/// Loads an MNIST-format folder split ("train" -> train-images-idx3-ubyte[.gz] +
/// train-labels-idx1-ubyte[.gz]; "test" -> t10k-*). Returns images uint8 N x H x W (28 x 28 for
/// MNIST) and labels int64 N. Throws gm::Error if the counts differ.
std::pair<torch::Tensor, torch::Tensor> load_mnist_split(const std::string& dir,
                                                         const std::string& split);

}  // namespace gm::data
