// Fashion-MNIST captions (see captions.h).
#include "genmodels/clip/captions.h"

#include <algorithm>

#include "genmodels/core/error.h"

namespace gm::clip {
namespace {

using Words = std::vector<std::string>;

// Per class (Fashion-MNIST order: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt,
// Sneaker, Bag, Ankle boot): the training synonyms, then the held-out ones.
const std::vector<Words>& train_synonyms() {
  static const std::vector<Words> s = {
      {"t-shirt", "tee", "short-sleeved top", "top"},
      {"pair of trousers", "pair of pants", "pair of slacks"},
      {"pullover", "sweater", "jumper"},
      {"dress", "gown", "frock"},
      {"coat", "jacket", "overcoat"},
      {"sandal", "flip-flop", "open-toed shoe"},
      {"shirt", "button-down shirt", "blouse"},
      {"sneaker", "trainer", "low-top sports shoe"},
      {"bag", "handbag", "purse"},
      {"ankle boot", "boot", "bootie"},
  };
  return s;
}

const std::vector<Words>& held_out_synonyms() {
  static const std::vector<Words> s = {
      {"tee shirt", "jersey top"},
      {"pair of jeans", "pair of long pants"},
      {"knitted sweatshirt", "woollen knit"},
      {"sundress", "one-piece dress"},
      {"parka", "winter coat"},
      {"strappy summer shoe", "slide sandal"},
      {"dress shirt", "collared shirt"},
      {"running shoe", "tennis shoe"},
      {"tote", "shoulder bag"},
      {"chelsea boot", "short leather boot"},
  };
  return s;
}

template <typename T>
const T& pick(const std::vector<T>& v, std::mt19937_64& rng) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}

void check_label(int64_t label) {
  if (label < 0 || label > 9)
    throw Error("captions: label " + std::to_string(label) +
                " is not a Fashion-MNIST class (0-9); captions are made for fashion-mnist data");
}

// The q-quantile (nearest rank) of v.
double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(q * double(v.size())));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

}  // namespace

std::string fill(const std::string& tmpl, const std::string& phrase) {
  const auto at = tmpl.find("{}");
  return tmpl.substr(0, at) + phrase + tmpl.substr(at + 2);
}

const std::vector<std::string>& class_synonyms(int64_t label, Wording w) {
  check_label(label);
  return (w == Wording::Train ? train_synonyms() : held_out_synonyms())[label];
}

const std::vector<std::string>& caption_templates(Wording w) {
  static const Words train = {"a photo of {}",
                              "a picture of {}",
                              "an image of {}",
                              "{} on a black background",
                              "a grayscale photo of {}",
                              "a small photo of {}",
                              "a product photo of {}",
                              "{}",
                              "black-and-white picture of {}",
                              "a catalogue image of {}"};
  static const Words held_out = {"a snapshot of {}", "this is {}", "a low-resolution image of {}",
                                 "a centred photo showing {}", "{}, photographed from above"};
  return w == Wording::Train ? train : held_out;
}

torch::Tensor measure_images(const torch::Tensor& images) {
  if (images.dim() != 4 || images.size(1) != 1)
    throw Error("captions: measuring images needs N x 1 x H x W gray images, got " +
                c10::str(images.sizes()));
  const int64_t h = images.size(2), w = images.size(3);
  const torch::Tensor v = ((images.to(torch::kDouble).squeeze(1) + 1.0) * 0.5).clamp(0, 1);
  const torch::Tensor mask = (v > 0.1).to(torch::kDouble);
  const torch::Tensor count = mask.sum({1, 2});
  const torch::Tensor some = count > 0;
  const torch::Tensor area = count / double(h * w);
  const torch::Tensor brightness = (v * mask).sum({1, 2}) / count.clamp_min(1.0);
  // Bounding box: first and last row / column holding an item pixel (argmax finds the first).
  auto extent = [](const torch::Tensor& any) {  // N x L of 0/1
    const int64_t l = any.size(1);
    const torch::Tensor first = any.argmax(1), last = (l - 1) - any.flip(1).argmax(1);
    return (last - first + 1).to(torch::kDouble);
  };
  const torch::Tensor rows = extent(mask.amax(2)), cols = extent(mask.amax(1));
  const torch::Tensor aspect = torch::where(some, cols / rows, torch::zeros_like(rows));
  return torch::stack({torch::where(some, brightness, torch::zeros_like(brightness)), area, aspect},
                      1);
}

ImageAttributes measure_image(const torch::Tensor& image) {
  if (image.dim() != 3 || image.size(0) != 1)
    throw Error("captions: measure_image expects a 1 x H x W image, got " +
                c10::str(image.sizes()));
  const torch::Tensor m = measure_images(image.unsqueeze(0))[0];
  ImageAttributes a;
  a.brightness = m[0].item<double>();
  a.area = m[1].item<double>();
  a.aspect = m[2].item<double>();
  return a;
}

torch::Tensor AttributeThresholds::to_tensor() const {
  torch::Tensor t = torch::empty({6, 10}, torch::kDouble);
  const double* rows[6] = {dark, light, small, large, narrow, wide};
  for (int64_t r = 0; r < 6; ++r)
    for (int64_t c = 0; c < 10; ++c) t[r][c] = rows[r][c];
  return t;
}

AttributeThresholds AttributeThresholds::from_tensor(const torch::Tensor& t) {
  if (t.sizes() != torch::IntArrayRef({6, 10}))
    throw Error("captions: attribute thresholds must be 6 x 10, got " + c10::str(t.sizes()));
  AttributeThresholds a{};
  double* rows[6] = {a.dark, a.light, a.small, a.large, a.narrow, a.wide};
  const torch::Tensor d = t.to(torch::kDouble).contiguous();
  const double* p = d.data_ptr<double>();
  for (int64_t r = 0; r < 6; ++r)
    for (int64_t c = 0; c < 10; ++c) rows[r][c] = p[r * 10 + c];
  return a;
}

AttributeThresholds attribute_thresholds(const std::vector<ImageAttributes>& a,
                                         const torch::Tensor& labels) {
  if (labels.numel() != static_cast<int64_t>(a.size()))
    throw Error("captions: " + std::to_string(a.size()) + " images but " +
                std::to_string(labels.numel()) + " labels");
  AttributeThresholds t{};
  const auto lab = labels.to(torch::kLong).contiguous();
  const int64_t* l = lab.data_ptr<int64_t>();
  for (int64_t c = 0; c < 10; ++c) {
    std::vector<double> b, s, r;
    for (size_t i = 0; i < a.size(); ++i) {
      if (l[i] != c) continue;
      b.push_back(a[i].brightness);
      s.push_back(a[i].area);
      r.push_back(a[i].aspect);
    }
    t.dark[c] = quantile(b, 0.2);
    t.light[c] = quantile(b, 0.8);
    t.small[c] = quantile(s, 0.2);
    t.large[c] = quantile(s, 0.8);
    t.narrow[c] = quantile(r, 0.2);
    t.wide[c] = quantile(r, 0.8);
  }
  return t;
}

std::vector<std::string> attribute_words(const ImageAttributes& a, int64_t label,
                                         const AttributeThresholds& t) {
  check_label(label);
  std::vector<std::string> w;
  if (a.area < t.small[label]) w.push_back("small");
  if (a.area > t.large[label]) w.push_back("large");
  if (a.brightness < t.dark[label]) w.push_back("dark");
  if (a.brightness > t.light[label]) w.push_back("light");
  if (a.aspect < t.narrow[label]) w.push_back("narrow");
  if (a.aspect > t.wide[label]) w.push_back("wide");
  return w;
}

std::string with_article(const std::string& phrase) {
  const bool vowel = !phrase.empty() && std::string("aeiou").find(phrase[0]) != std::string::npos;
  const bool one = phrase.rfind("one", 0) == 0;  // "a one-piece dress"
  return (vowel && !one ? "an " : "a ") + phrase;
}

std::string make_caption(int64_t label, const std::vector<std::string>& words, Wording w,
                         std::mt19937_64& rng) {
  std::string phrase;
  std::bernoulli_distribution keep(0.5);
  for (const auto& word : words)
    if (keep(rng)) phrase += word + " ";
  phrase += pick(class_synonyms(label, w), rng);
  return fill(pick(caption_templates(w), rng), with_article(phrase));
}

std::vector<std::string> class_prompts(int64_t label, Wording w) {
  std::vector<std::string> out;
  for (const auto& t : caption_templates(w))
    for (const auto& s : class_synonyms(label, w)) out.push_back(fill(t, with_article(s)));
  return out;
}

}  // namespace gm::clip
