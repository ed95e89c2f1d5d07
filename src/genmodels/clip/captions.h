// Captions made from Fashion-MNIST labels and from what is measured in each image, so CLIP
// (Radford et al. 2021) can be trained here without downloads (issue #17).
//
// A caption is a template ("a photo of {}", "{} on a black background", ...) around a noun
// phrase: an optional attribute word measured from the image (dark / light, small / large,
// narrow / wide) and one of the class's synonyms ("sneaker", "trainers", "low-top sports
// shoe", ...). Templates and synonyms come in two disjoint sets: the training set, and a held-out
// set used only to test that the text encoder generalises past the exact training wording.
// Captions are lower-case ASCII.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace gm::clip {

enum class Wording { Train, HeldOut };

/// Synonyms of Fashion-MNIST class `label` (0-9) in one wording set (several per class).
const std::vector<std::string>& class_synonyms(int64_t label, Wording w);
/// Templates with one "{}" for the noun phrase (the article is part of the phrase).
const std::vector<std::string>& caption_templates(Wording w);

/// What is measured in one image (1 x H x W in [-1, 1], the item bright on black).
struct ImageAttributes {
  double brightness = 0;  ///< mean intensity in [0, 1] of the item's pixels (> 0.1)
  double area = 0;        ///< share of the image the item covers
  double aspect = 0;      ///< bounding-box width / height
};
ImageAttributes measure_image(const torch::Tensor& image);
/// The same for a batch N x 1 x H x W, in a few tensor operations: N x 3 float64 rows
/// (brightness, area, aspect).
torch::Tensor measure_images(const torch::Tensor& images);

/// The attribute words of an image (e.g. {"dark", "small"}): each attribute in the outer fifth
/// of the training set's range for its class gets its word (thresholds from
/// attribute_thresholds), the rest none.
struct AttributeThresholds {
  double dark[10], light[10], small[10], large[10], narrow[10], wide[10];
  /// As a 6 x 10 float64 tensor (rows dark, light, small, large, narrow, wide), for checkpoints.
  torch::Tensor to_tensor() const;
  static AttributeThresholds from_tensor(const torch::Tensor& t);
};
AttributeThresholds attribute_thresholds(const std::vector<ImageAttributes>& a,
                                         const torch::Tensor& labels);
std::vector<std::string> attribute_words(const ImageAttributes& a, int64_t label,
                                         const AttributeThresholds& t);

/// `tmpl` with its "{}" replaced by `phrase`.
std::string fill(const std::string& tmpl, const std::string& phrase);

/// "a" or "an" + phrase.
std::string with_article(const std::string& phrase);

/// One caption for an image of class `label` with attribute words `words`: a random template
/// and synonym of the wording set, and each attribute word with probability 1/2.
std::string make_caption(int64_t label, const std::vector<std::string>& words, Wording w,
                         std::mt19937_64& rng);

/// The zero-shot prompts of a class: every template x every synonym of the wording set.
std::vector<std::string> class_prompts(int64_t label, Wording w);

}  // namespace gm::clip
