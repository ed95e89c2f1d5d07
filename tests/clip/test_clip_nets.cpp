// CLIP's pieces: InfoNCE against a hand computation, the temperature clamp, causal text features,
// token rows, and a tiny CLIP that learns a synthetic paired task (shapes and their words) to
// zero-shot accuracy near 100 % on wording it never saw.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <random>
#include <utility>
#include <vector>

#include "genmodels/clip/bpe.h"
#include "genmodels/clip/clip_nets.h"
#include "genmodels/core/error.h"

namespace {

using namespace gm::clip;

TEST(ClipNets, InfoNceEqualsTheHandComputedCrossEntropy) {
  torch::manual_seed(1);
  const auto img = torch::nn::functional::normalize(
      torch::randn({5, 8}, torch::kDouble), torch::nn::functional::NormalizeFuncOptions().dim(1));
  const auto txt = torch::nn::functional::normalize(
      torch::randn({5, 8}, torch::kDouble), torch::nn::functional::NormalizeFuncOptions().dim(1));
  const auto scale = torch::full({}, 2.0, torch::kDouble);
  double i2t = 0, t2i = 0;
  for (int i = 0; i < 5; ++i) {
    double zi = 0, zt = 0;
    for (int j = 0; j < 5; ++j) {
      zi += std::exp(std::exp(2.0) * (img[i] * txt[j]).sum().item<double>());
      zt += std::exp(std::exp(2.0) * (img[j] * txt[i]).sum().item<double>());
    }
    const double diag = std::exp(2.0) * (img[i] * txt[i]).sum().item<double>();
    i2t += std::log(zi) - diag;
    t2i += std::log(zt) - diag;
  }
  const double want = 0.5 * (i2t + t2i) / 5.0;
  EXPECT_NEAR(clip_loss(img, txt, scale).item<double>(), want, 1e-10);
  EXPECT_THROW(clip_loss(img, txt.narrow(0, 0, 4), scale), gm::Error);
}

ClipNet tiny_clip(int64_t vocab, int64_t context) {
  VisionOptions v;
  v.image_size = 8;
  v.patch = 4;
  v.embed_dim = 32;
  v.transformer = {32, 2, 2, 2, false};
  TextEncoderOptions t;
  t.vocab_size = vocab;
  t.context = context;
  t.embed_dim = 32;
  t.transformer = {32, 2, 2, 2, true};
  return ClipNet(v, t);
}

TEST(ClipNets, TemperatureStartsAt1Over007AndStaysClamped) {
  ClipNet net = tiny_clip(300, 8);
  EXPECT_NEAR(std::exp(net->logit_scale.item<double>()), 1.0 / 0.07, 1e-6);
  torch::optim::SGD opt({net->logit_scale}, torch::optim::SGDOptions(10.0));
  for (int i = 0; i < 3; ++i) {
    opt.zero_grad();
    (-net->logit_scale).backward();  // pushes the scale up by 10 per step
    opt.step();
    net->clamp_logit_scale();
    EXPECT_LE(std::exp(net->logit_scale.item<double>()), 100.0 * (1 + 1e-6));  // fp32 rounding
  }
  EXPECT_NEAR(std::exp(net->logit_scale.item<double>()), 100.0, 1e-4);
}

TEST(ClipNets, TokenRowsAndCausalFeatures) {
  const Bpe bpe = Bpe::train({"a b c", "a b c"}, 10);
  const auto rows = tokenize(bpe, {"a b", "a b c a b c a b c"}, 6);
  ASSERT_EQ(rows.sizes(), (std::vector<int64_t>{2, 6}));
  EXPECT_EQ(rows[0][0].item<int64_t>(), bpe.start_token());
  const auto ids = bpe.encode("a b");
  EXPECT_EQ(rows[0][int64_t(ids.size()) + 1].item<int64_t>(), bpe.end_token());
  EXPECT_EQ(rows[0][5].item<int64_t>(), 0);                // padding
  EXPECT_EQ(rows[1][5].item<int64_t>(), bpe.end_token());  // truncated: the end token stays
  // The text feature is read at the end token and sees nothing after it.
  torch::manual_seed(2);
  ClipNet net = tiny_clip(bpe.vocab_size(), 6);
  const auto other_padding = rows.clone();
  other_padding[0][5] = 7;
  const auto f1 = net->encode_text(rows, bpe.end_token());
  const auto f2 = net->encode_text(other_padding, bpe.end_token());
  EXPECT_TRUE(torch::allclose(f1[0], f2[0], 1e-6, 1e-6));
  EXPECT_NEAR(f1.norm(2, 1).mean().item<double>(), 1.0, 1e-5);
}

// The text transformer runs only up to the batch's last end token: features and gradients equal
// those of the full context (forced by a row without an end token).
TEST(ClipNets, TextStopsAtTheLastEndTokenWithTheSameResult) {
  const Bpe bpe = Bpe::train({"a b c", "a b c"}, 10);
  const auto rows = tokenize(bpe, {"a b", "a", "a b c"}, 12);
  torch::manual_seed(3);
  ClipNet net = tiny_clip(bpe.vocab_size(), 12);
  const auto full_row = torch::full({1, 12}, 5, torch::kLong);  // no end token: the whole context
  std::vector<torch::Tensor> feats, grads;
  for (bool forced : {false, true}) {
    net->zero_grad();
    const auto t = forced ? torch::cat({rows, full_row}) : rows;
    const auto f = net->text(t, bpe.end_token()).narrow(0, 0, 3);
    (f * torch::linspace(-1, 1, f.numel()).view(f.sizes())).sum().backward();
    feats.push_back(f.detach());
    grads.push_back(net->text->transformer->blocks[0]->qkv->weight.grad().clone());
  }
  EXPECT_TRUE(torch::allclose(feats[0], feats[1], 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(grads[0], grads[1], 1e-5, 1e-6));
  EXPECT_GT(grads[0].abs().sum().item<double>(), 0);
}

// Four 8x8 shapes at random positions and brightness, captioned with training wording; zero-shot
// classification of fresh shapes with a template never used in training (made of known words).
torch::Tensor shape_image(int64_t kind, std::mt19937_64& rng) {
  torch::Tensor img = torch::full({1, 8, 8}, -1.0);
  std::uniform_int_distribution<int64_t> pos(0, 3);
  const double v = std::uniform_real_distribution<double>(0.3, 1.0)(rng);
  const int64_t r = pos(rng), c = pos(rng);
  if (kind == 0) img.narrow(1, r + 2, 1).narrow(2, 0, 8).fill_(v);  // horizontal bar
  if (kind == 1) img.narrow(1, 0, 8).narrow(2, c + 2, 1).fill_(v);  // vertical bar
  if (kind == 2) img.narrow(1, r, 4).narrow(2, c, 4).fill_(v);      // filled square
  if (kind == 3) {                                                  // cross
    img.narrow(1, r + 2, 1).narrow(2, 0, 8).fill_(v);
    img.narrow(1, 0, 8).narrow(2, c + 2, 1).fill_(v);
  }
  return img;
}

const std::vector<std::vector<std::string>>& shape_names() {
  static const std::vector<std::vector<std::string>> names = {{"horizontal bar", "flat line"},
                                                              {"vertical bar", "upright line"},
                                                              {"square", "filled block"},
                                                              {"cross", "plus sign"}};
  return names;
}
const std::vector<std::string>& shape_templates() {
  static const std::vector<std::string> t = {"a {}", "an image of a {}", "a photo showing a {}"};
  return t;
}
std::string fill(const std::string& t, const std::string& w) {
  return t.substr(0, t.find("{}")) + w + t.substr(t.find("{}") + 2);
}

// A word no caption uses and a synonym that captions use, as ClipModel's model.lexicon pairs
// them (clip/lexicon.h).
const std::vector<std::pair<std::string, std::string>>& shape_lexicon() {
  static const std::vector<std::pair<std::string, std::string>> l = {{"stripe", "flat line"},
                                                                     {"pillar", "upright line"},
                                                                     {"tile", "filled block"},
                                                                     {"crucifix", "plus sign"}};
  return l;
}

// Trains the tiny CLIP for 400 steps on the shapes with training wording; with `lexicon`, each
// step also pulls every lexicon word in a training template toward its synonym in the same
// template, held fixed (weight 0.5 on the mean 1 - cosine), as ClipModel does.
ClipNet train_shapes(const Bpe& bpe, int64_t context, bool lexicon, double* first, double* last) {
  torch::manual_seed(3);
  ClipNet net = tiny_clip(bpe.vocab_size(), context);
  auto groups = decay_groups(*net);
  std::vector<torch::optim::OptimizerParamGroup> pg;
  pg.emplace_back(groups.first, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(3e-3).weight_decay(0.1)));
  pg.emplace_back(groups.second, std::make_unique<torch::optim::AdamWOptions>(
                                     torch::optim::AdamWOptions(3e-3).weight_decay(0.0)));
  torch::optim::AdamW opt(pg, torch::optim::AdamWOptions(3e-3));
  std::mt19937_64 rng(4);
  const int64_t batch = 32;
  const auto& train_t = shape_templates();
  for (int step = 0; step < 400; ++step) {
    std::vector<torch::Tensor> imgs;
    std::vector<std::string> caps;
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t k = i % 4;  // every class in every batch
      imgs.push_back(shape_image(k, rng));
      const auto& t = train_t[rng() % train_t.size()];
      caps.push_back(fill(t, shape_names()[k][rng() % 2]));
    }
    opt.zero_grad();
    auto loss = clip_loss(net->encode_image(torch::stack(imgs)),
                          net->encode_text(tokenize(bpe, caps, context), bpe.end_token()),
                          net->logit_scale);
    if (lexicon) {
      std::vector<std::string> terms, anchors;
      for (const auto& [word, synonym] : shape_lexicon()) {
        const auto& t = train_t[rng() % train_t.size()];
        terms.push_back(fill(t, word));
        anchors.push_back(fill(t, synonym));
      }
      const auto a = net->encode_text(tokenize(bpe, terms, context), bpe.end_token());
      torch::Tensor b;
      {
        torch::NoGradGuard ng;
        b = net->encode_text(tokenize(bpe, anchors, context), bpe.end_token());
      }
      loss = loss + 0.5 * (1.0 - torch::cosine_similarity(a, b, 1).mean());
    }
    loss.backward();
    opt.step();
    net->clamp_logit_scale();
    (step == 0 ? *first : *last) = loss.item<double>();
  }
  return net;
}

// Zero-shot accuracy over n fresh shapes: each class's prompt ensemble in `words[k]`, each word
// in the template "an image showing a {}", which no training caption uses.
int shapes_zero_shot(ClipNet& net, const Bpe& bpe, int64_t context,
                     const std::vector<std::vector<std::string>>& words, int n) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> class_emb;
  for (const auto& ws : words) {
    std::vector<std::string> prompts;
    for (const auto& w : ws) prompts.push_back(fill("an image showing a {}", w));
    const auto e = net->encode_text(tokenize(bpe, prompts, context), bpe.end_token()).mean(0);
    class_emb.push_back(e / e.norm());
  }
  const auto cls = torch::stack(class_emb);
  std::mt19937_64 rng(11);
  int correct = 0;
  for (int i = 0; i < n; ++i) {
    const int64_t k = i % 4;
    const auto f = net->encode_image(shape_image(k, rng).unsqueeze(0));
    correct += torch::matmul(f, cls.t()).argmax(1).item<int64_t>() == k;
  }
  return correct;
}

std::vector<std::string> shapes_corpus(bool lexicon) {
  std::vector<std::string> corpus;
  for (const auto& t : shape_templates())
    for (const auto& ws : shape_names())
      for (const auto& w : ws) corpus.push_back(fill(t, w));
  if (lexicon)  // as ClipModel: the BPE also learns from the lexicon's texts
    for (const auto& [word, synonym] : shape_lexicon()) {
      corpus.push_back(fill(shape_templates()[0], word));
      corpus.push_back(fill(shape_templates()[0], synonym));
    }
  return corpus;
}

const std::vector<std::vector<std::string>> kUnseenWords = {
    {"stripe"}, {"pillar"}, {"tile"}, {"crucifix"}};

// A trained tiny CLIP on the shapes, with or without the lexicon, and its zero-shot accuracy.
struct ShapesRun {
  explicit ShapesRun(bool lexicon) : bpe(Bpe::train(shapes_corpus(lexicon), 80)) {
    net = train_shapes(bpe, context, lexicon, &first, &last);
  }
  int zero_shot(const std::vector<std::vector<std::string>>& words) {
    return shapes_zero_shot(net, bpe, context, words, n);
  }
  static constexpr int64_t context = 12;
  static constexpr int n = 200;
  Bpe bpe;
  ClipNet net{nullptr};
  double first = 0, last = 0;
};

TEST(ClipNets, TinyClipLearnsZeroShotOnUnseenWording) {
  ShapesRun r(false);
  const int n = ShapesRun::n;
  const int correct = r.zero_shot(shape_names());
  // The words no caption used, without a lexicon: what the lexicon test below improves on.
  const int unseen = r.zero_shot(kUnseenWords);
  std::cout << "  tiny CLIP: loss " << r.first << " -> " << r.last
            << ", held-out-template zero-shot " << correct << "/" << n << ", unseen words "
            << unseen << "/" << n << "\n";
  // 8 captions of each class per batch of 32 cannot be told apart: the loss floor is log 8.
  EXPECT_GT(r.first, 3.0);
  EXPECT_LT(r.last, std::log(8.0) + 0.25);
  EXPECT_GE(correct, 0.95 * n);
}

// model.lexicon's mechanism: words that no caption uses classify as well as the caption words
// once the text encoder has been pulled from them toward their synonyms (text only).
TEST(ClipNets, LexiconTeachesWordsNoCaptionUses) {
  ShapesRun r(true);
  const int n = ShapesRun::n;
  const int unseen = r.zero_shot(kUnseenWords);
  const int known = r.zero_shot(shape_names());
  std::cout << "  tiny CLIP with a lexicon: words only the lexicon has " << unseen << "/" << n
            << ", caption words " << known << "/" << n << "\n";
  EXPECT_GE(unseen, 0.9 * n);
  EXPECT_GE(known, 0.95 * n);
}

}  // namespace
