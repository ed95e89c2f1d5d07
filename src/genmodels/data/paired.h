// Two-domain data for image-to-image translation (pix2pix, CycleGAN). A two-domain Dataset keeps
// domain A's and domain B's images stacked on the channel axis (x = cat(A, B, 1), A's
// `channels_a` channels first), so the shared Batcher shuffles, flips and resumes both together.
//
// Paired specs (example i of A translates to example i of B):
//   fmnist-edges     Fashion-MNIST edge maps -> items (like edges2shoes; sobel_edges below)
//   fmnist-inpaint   items with a gray box masked out -> items (inpaint_boxes below)
//   paired:DIR       the pix2pix convention: each image holds A and B side by side (A left)
//   paired:DIR_A,DIR_B   files of the same name in two folders
// For both folder forms, DIR/train and DIR/test (or DIR/val) are the splits when they exist.
// Unpaired (CycleGAN): any two image datasets of the same channel count and size, e.g.
// fashion-mnist:7 and fashion-mnist:9 (sneaker <-> ankle boot), paired up by a seeded draw.
#pragma once
#include <string>

#include "genmodels/data/dataset.h"

namespace gm::data {

/// True for the paired specs above.
bool is_paired_spec(const std::string& spec);

/// Loads a paired spec as a two-domain dataset (channels_a set). Errors (one line) name the file:
/// a side-by-side image of odd width, a file without its partner, an empty folder.
Dataset load_paired(const std::string& spec, const DataOptions& options);

/// Two datasets as one two-domain dataset for unpaired training: max(|A|, |B|) examples, example
/// i = (A[i mod |A|], B[pi(i) mod |B|]) with pi a permutation drawn from `seed` (the test split
/// uses seed + 1). y holds A's labels. Errors when a domain is empty or the two differ in channels
/// or size.
Dataset make_unpaired(const Dataset& a, const Dataset& b, uint64_t seed);

/// The edge maps of fmnist-edges: the Sobel gradient magnitude of each image mapped to [0, 1]
/// (zero padding), thresholded at half of the image's maximum magnitude (>=), as a binary map in
/// [-1, 1] (-1 = 0, 1 = 255). An image with no gradient gives an all-(-1) map. N x 1 x H x W.
torch::Tensor sobel_edges(const torch::Tensor& images);

/// fmnist-inpaint's inputs: each image with a square of side round(0.4 * size) set to 0 (mid
/// gray), its corner drawn per image from a generator seeded with `seed`.
torch::Tensor inpaint_boxes(const torch::Tensor& images, uint64_t seed);

/// Splits one side-by-side image (C x H x 2W) into its halves; throws naming `path` when the width
/// is odd.
std::pair<torch::Tensor, torch::Tensor> split_side_by_side(const torch::Tensor& image,
                                                           const std::string& path);

}  // namespace gm::data
