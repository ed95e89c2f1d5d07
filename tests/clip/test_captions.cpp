// Fashion-MNIST captions: held-out wording disjoint from the training wording, attributes measured
// from images, articles, seeded captions that name their class.
#include <gtest/gtest.h>

#include <set>

#include "genmodels/clip/captions.h"
#include "genmodels/core/error.h"

namespace {

using namespace gm::clip;

TEST(Captions, HeldOutWordingIsDisjointFromTraining) {
  std::set<std::string> train(caption_templates(Wording::Train).begin(),
                              caption_templates(Wording::Train).end());
  for (const auto& t : caption_templates(Wording::HeldOut)) EXPECT_EQ(train.count(t), 0u) << t;
  std::set<std::string> all_train;
  for (int64_t c = 0; c < 10; ++c)
    for (const auto& s : class_synonyms(c, Wording::Train)) all_train.insert(s);
  for (int64_t c = 0; c < 10; ++c) {
    EXPECT_GE(class_synonyms(c, Wording::Train).size(), 3u);
    EXPECT_GE(class_synonyms(c, Wording::HeldOut).size(), 2u);
    for (const auto& s : class_synonyms(c, Wording::HeldOut))
      EXPECT_EQ(all_train.count(s), 0u) << s;
  }
  EXPECT_EQ(
      class_prompts(7, Wording::HeldOut).size(),
      caption_templates(Wording::HeldOut).size() * class_synonyms(7, Wording::HeldOut).size());
  EXPECT_THROW(class_synonyms(10, Wording::Train), gm::Error);
}

torch::Tensor box_image(int64_t top, int64_t left, int64_t h, int64_t w, double value) {
  torch::Tensor img = torch::full({1, 28, 28}, -1.0);
  img.narrow(1, top, h).narrow(2, left, w).fill_(2.0 * value - 1.0);
  return img;
}

TEST(Captions, MeasuresTheItem) {
  const ImageAttributes sq = measure_image(box_image(4, 4, 10, 10, 1.0));
  EXPECT_NEAR(sq.area, 100.0 / 784.0, 1e-9);
  EXPECT_NEAR(sq.brightness, 1.0, 1e-6);
  EXPECT_NEAR(sq.aspect, 1.0, 1e-9);
  const ImageAttributes bar = measure_image(box_image(10, 2, 5, 20, 0.5));
  EXPECT_NEAR(bar.aspect, 4.0, 1e-9);
  EXPECT_NEAR(bar.brightness, 0.5, 1e-6);
  EXPECT_EQ(measure_image(torch::full({1, 28, 28}, -1.0)).area, 0.0);
  // A batch is measured image by image.
  const torch::Tensor batch = torch::stack(
      {box_image(4, 4, 10, 10, 1.0), box_image(10, 2, 5, 20, 0.5), torch::full({1, 28, 28}, -1.0)});
  const torch::Tensor m = gm::clip::measure_images(batch);
  ASSERT_EQ(m.sizes(), torch::IntArrayRef({3, 3}));
  EXPECT_NEAR(m[1][0].item<double>(), 0.5, 1e-6);
  EXPECT_NEAR(m[1][1].item<double>(), 100.0 / 784.0, 1e-9);
  EXPECT_NEAR(m[1][2].item<double>(), 4.0, 1e-9);
  EXPECT_EQ(m[2][2].item<double>(), 0.0);
  EXPECT_THROW(gm::clip::measure_images(torch::zeros({2, 3, 8, 8})), gm::Error);
}

TEST(Captions, AttributeWordsAreRelativeToTheClass) {
  // Class 7: 10 items of growing brightness and size; class 8 all alike.
  std::vector<ImageAttributes> a;
  std::vector<int64_t> labels;
  for (int i = 0; i < 10; ++i) {
    a.push_back(measure_image(box_image(2, 2, 6 + i, 6 + i, 0.3 + 0.07 * i)));
    labels.push_back(7);
    a.push_back(measure_image(box_image(2, 2, 8, 8, 0.6)));
    labels.push_back(8);
  }
  const AttributeThresholds t = attribute_thresholds(a, torch::tensor(labels));
  const auto first = attribute_words(a[0], 7, t), last = attribute_words(a[18], 7, t);
  EXPECT_EQ(first, (std::vector<std::string>{"small", "dark"}));
  EXPECT_EQ(last, (std::vector<std::string>{"large", "light"}));
  EXPECT_TRUE(attribute_words(a[1], 8, t).empty());  // nothing stands out within class 8
}

TEST(Captions, ArticlesAndSeededCaptions) {
  EXPECT_EQ(with_article("ankle boot"), "an ankle boot");
  EXPECT_EQ(with_article("sneaker"), "a sneaker");
  EXPECT_EQ(with_article("one-piece dress"), "a one-piece dress");
  std::mt19937_64 r1(5), r2(5);
  std::set<std::string> distinct;
  for (int i = 0; i < 200; ++i) {
    const std::string c = make_caption(9, {"small", "dark"}, Wording::Train, r1);
    EXPECT_EQ(c, make_caption(9, {"small", "dark"}, Wording::Train, r2));
    bool names_class = false;
    for (const auto& s : class_synonyms(9, Wording::Train))
      names_class |= c.find(s) != std::string::npos;
    EXPECT_TRUE(names_class) << c;
    for (char ch : c) EXPECT_FALSE(ch >= 'A' && ch <= 'Z') << c;
    distinct.insert(c);
  }
  EXPECT_GT(distinct.size(), 50u);  // not a bijection of the label
}

}  // namespace
