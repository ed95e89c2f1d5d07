#include "genmodels/clip/clip_model.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <iostream>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>

#include "genmodels/clip/bpe.h"
#include "genmodels/clip/captions.h"
#include "genmodels/clip/clip_nets.h"
#include "genmodels/clip/lexicon.h"
#include "genmodels/core/error.h"
#include "genmodels/core/runtime.h"
#include "genmodels/nn/precision.h"

namespace gm {
namespace {

// The model.* settings of clip, bound by clip_keys().
struct ClipSettings {
  int64_t patch = 4;               ///< model.patch
  int64_t width = 128;             ///< model.width (image transformer)
  int64_t layers = 4;              ///< model.layers
  int64_t heads = 4;               ///< model.heads
  int64_t text_width = 128;        ///< model.text_width
  int64_t text_layers = 4;         ///< model.text_layers
  int64_t embed_dim = 64;          ///< model.embed_dim
  int64_t context = 24;            ///< model.context
  int64_t bpe_merges = 300;        ///< model.bpe_merges
  int64_t bpe_corpus = 20000;      ///< model.bpe_corpus
  double bpe_dropout = 0.0;        ///< model.bpe_dropout
  std::string precision = "fp32";  ///< model.precision
  double noised_share = 0.0;       ///< model.noised_share
  std::string lexicon;             ///< model.lexicon
  std::string lexicon_roots = "clothing#1,footwear#2,bag#1,bag#4";  ///< model.lexicon_roots
  double lexicon_weight = 0.5;                                      ///< model.lexicon_weight
  int64_t lexicon_batch = 64;                                       ///< model.lexicon_batch
};

KeyTable<ClipSettings> clip_keys() {
  using O = ClipSettings;
  KeyTable<O> t;
  t.add("model.patch", &O::patch, "ViT patch size (divides the image size: 4 or 7 for 28)");
  t.add("model.width", &O::width, "image transformer width");
  t.add("model.layers", &O::layers, "image transformer layers");
  t.add("model.heads", &O::heads, "attention heads (both transformers)");
  t.add("model.text_width", &O::text_width, "text transformer width");
  t.add("model.text_layers", &O::text_layers, "text transformer layers");
  t.add("model.embed_dim", &O::embed_dim, "shared image-text embedding dimensions");
  t.add("model.context", &O::context, "text context length in tokens (start and end included)");
  t.add("model.bpe_merges", &O::bpe_merges, "BPE merges learned from the training captions");
  t.add("model.bpe_corpus", &O::bpe_corpus, "training captions the BPE is learned from");
  t.add("model.bpe_dropout", &O::bpe_dropout,
        "BPE-dropout while training (Provilkov et al. 2020): each merge skipped with this "
        "probability, so known words are also seen in pieces (0 = off; 0.1 in the paper)");
  t.add("model.precision", &O::precision, nn::kPrecisionHelp, nn::precision_choices());
  t.add("model.noised_share", &O::noised_share,
        "share of each batch noised (log-uniform sigma in [0.002, 80]) for a noise-conditional "
        "image encoder that can guide diffusion sampling (0 = clean images only)");
  t.add("model.lexicon", &O::lexicon,
        "a WordNet database directory (apt-get install wordnet-base: /usr/share/wordnet) whose "
        "synonyms and broader terms teach the text encoder words no caption has: each step also "
        "pulls lexicon terms in caption templates toward a synonym or broader term in the same "
        "template (text only; '' = off)");
  t.add("model.lexicon_roots", &O::lexicon_roots,
        "WordNet senses (LEMMA#SENSE, comma-separated) whose hyponyms form the lexicon");
  t.add("model.lexicon_weight", &O::lexicon_weight,
        "weight of the lexicon's term (mean 1 - cosine to the anchor)");
  t.add("model.lexicon_batch", &O::lexicon_batch,
        "lexicon entries per step (distinct; at most the lexicon's size)");
  return t;
}

// The networks and what the captions need, all in the checkpoint: the BPE merges (a fixed-size
// buffer, unused rows -1) and the attribute thresholds measured on the training set.
struct ClipModuleImpl : torch::nn::Module {
  ClipModuleImpl(const clip::VisionOptions& v, const clip::TextEncoderOptions& t, int64_t merges)
      : net(register_module("net", clip::ClipNet(v, t))) {
    bpe_merges = register_buffer("bpe_merges", torch::full({merges, 2}, -1, torch::kLong));
    thresholds = register_buffer("attribute_thresholds", torch::zeros({6, 10}, torch::kDouble));
  }
  clip::ClipNet net;
  torch::Tensor bpe_merges, thresholds;
};
TORCH_MODULE(ClipModule);

class ClipModel : public Model {
 public:
  ClipModel(const Config& c, const DataInfo& info) : info_(info), module_(nullptr) {
    s_ = clip_keys().read(c);
    captioned_ = info.dataset.rfind("captions:", 0) == 0;
    const bool fashion = info.is_image() && info.shape[0] == 1 && info.num_classes() == 10 &&
                         info.dataset.rfind("fashion-mnist", 0) == 0;
    if (!captioned_ && !fashion)
      throw Error(
          "clip trains on fashion-mnist (captions made from the labels and the measured "
          "items) or on captions:DIR (images with .txt captions); got data " +
          info.dataset);
    if (info.shape[1] != info.shape[2])
      throw Error("clip takes square images, got " + std::to_string(info.shape[1]) + "x" +
                  std::to_string(info.shape[2]) + "; resize with --set data.image_size=N");
    if (s_.patch < 1 || info.shape[1] % s_.patch != 0 || info.shape[2] % s_.patch != 0)
      throw Error("model.patch = " + std::to_string(s_.patch) + " must divide the image size " +
                  std::to_string(info.shape[1]) + "x" + std::to_string(info.shape[2]));
    if (s_.context < 4) throw Error("model.context must be >= 4 tokens");
    if (!(s_.noised_share >= 0 && s_.noised_share <= 1))
      throw Error("model.noised_share = " + num(s_.noised_share) + " must be in [0, 1]");
    if (!(s_.bpe_dropout >= 0 && s_.bpe_dropout < 1))
      throw Error("model.bpe_dropout = " + num(s_.bpe_dropout) +
                  " must be in [0, 1) (0 = off; 0.1 in the paper)");
    if (s_.bpe_merges < 0 || s_.bpe_corpus < 1)
      throw Error("model.bpe_merges must be >= 0 and model.bpe_corpus >= 1");
    if (!s_.lexicon.empty() && (s_.lexicon_batch < 1 || !(s_.lexicon_weight > 0)))
      throw Error("model.lexicon_batch must be >= 1 and model.lexicon_weight > 0 (got " +
                  std::to_string(s_.lexicon_batch) + ", " + num(s_.lexicon_weight) +
                  "); model.lexicon='' turns the lexicon off");
    for (int64_t w : {s_.width, s_.text_width})
      if (s_.heads < 1 || w % s_.heads != 0)
        throw Error("model.heads = " + std::to_string(s_.heads) +
                    " must divide model.width and model.text_width");
    bf16_ = nn::parse_precision(s_.precision, "model.precision") == nn::Precision::Bf16;
    clip::VisionOptions v;
    v.channels = info.shape[0];
    v.image_size = info.shape[1];
    v.patch = s_.patch;
    v.embed_dim = s_.embed_dim;
    v.transformer = {s_.width, s_.layers, s_.heads, 4, false};
    v.noise_conditional = s_.noised_share > 0;
    clip::TextEncoderOptions t;
    t.vocab_size = 256 + s_.bpe_merges + 2;
    t.context = s_.context;
    t.embed_dim = s_.embed_dim;
    t.transformer = {s_.text_width, s_.text_layers, s_.heads, 4, true};
    module_ = ClipModule(v, t, s_.bpe_merges);
    module_->to(torch::Device(c.get_string("device")));
  }

  torch::nn::Module& module() override { return *module_; }

  // Weight decay on matrices and embeddings only (decay_groups), as the reference training does:
  // two optimizers over one loss.
  std::vector<train::OptimizerSpec> optimizers(const train::OptimizerOptions& main) override {
    auto [decay, no_decay] = clip::decay_groups(*module_->net);
    train::OptimizerOptions plain = main;
    plain.weight_decay = 0;
    train::OptimizerOptions m = main;
    m.bf16 = plain.bf16 = bf16_;
    return {{"main", decay, m}, {"gains", no_decay, plain}};
  }
  std::vector<train::EmaSpec> ema_targets() override { return {{"main", module_->net.get()}}; }

  bool generates() const override { return false; }

  // Measures the training images, learns the BPE from training captions, then the shared
  // trainer. (A resumed run recomputes both from the same data and seed, then loads the same
  // values from its checkpoint.)
  Json train(TrainSession& s) override {
    load_lexicon();
    if (captioned_) {
      captions_.clear();
      for (const auto& c : s.train.captions) captions_.push_back(normalise_caption(c));
      const size_t n = std::min<size_t>(captions_.size(), static_cast<size_t>(s_.bpe_corpus));
      std::vector<std::string> corpus(captions_.begin(), captions_.begin() + n);
      add_lexicon_texts(corpus, s.seed);
      learned(clip::Bpe::train(corpus, s_.bpe_merges), captions_.front(), n, s);
      return Model::train(s);
    }
    std::vector<clip::ImageAttributes> attrs;
    const torch::Tensor m = measure_all(s.train.x);
    const double* mp = m.data_ptr<double>();
    for (int64_t i = 0; i < m.size(0); ++i)
      attrs.push_back({mp[3 * i], mp[3 * i + 1], mp[3 * i + 2]});
    const clip::AttributeThresholds t = clip::attribute_thresholds(attrs, s.train.y);
    std::mt19937_64 rng(s.seed);
    std::vector<std::string> corpus;
    const int64_t n = s.train.size();
    const torch::Tensor labels = s.train.y.to(torch::kLong).contiguous();
    const int64_t* lp = labels.data_ptr<int64_t>();
    for (int64_t i = 0; i < s_.bpe_corpus; ++i) {
      const int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
      const int64_t label = lp[j];
      corpus.push_back(clip::make_caption(label, clip::attribute_words(attrs[j], label, t),
                                          clip::Wording::Train, rng));
    }
    {
      torch::NoGradGuard no_grad;
      module_->thresholds.copy_(t.to_tensor());
    }
    const size_t n_captions = corpus.size();
    add_lexicon_texts(corpus, s.seed);
    learned(clip::Bpe::train(corpus, s_.bpe_merges), corpus.front(), n_captions, s);
    return Model::train(s);
  }

  // One contrastive step: a fresh caption for every image (a random training template and
  // synonym, each measured attribute word with probability 1/2), the symmetric InfoNCE loss.
  void train_step(const data::Batcher::Batch& batch, train::StepContext& ctx) override {
    const clip::Bpe& bpe = tokenizer();
    // Caption randomness from LibTorch's generator, so that a resumed run draws the same.
    std::mt19937_64 rng(static_cast<uint64_t>(
        torch::randint(0, std::numeric_limits<int64_t>::max(), {1}, torch::kLong).item<int64_t>()));
    const std::vector<std::string> captions =
        captioned_ ? captions_of(batch.y)
                   : make_captions(batch.x, batch.y, clip::Wording::Train, rng);
    const torch::Tensor tokens = clip::tokenize(bpe, captions, s_.context, s_.bpe_dropout,
                                                s_.bpe_dropout > 0 ? &rng : nullptr)
                                     .to(batch.x.device());
    // Noise augmentation (GLIDE's noised CLIP, Nichol et al. 2022, Sec. 2.4): a share of the
    // images become the variance-preserving (x + sigma n) / sqrt(1 + sigma^2), log sigma uniform
    // over the range diffusion samplers visit, and the encoder is told sigma.
    torch::Tensor images = batch.x, sigma;
    if (s_.noised_share > 0) {
      const int64_t n = images.size(0);
      const auto opts = images.options().dtype(torch::kFloat);
      const double lo = std::log(0.002), hi = std::log(80.0);
      const torch::Tensor noised = torch::rand({n}, opts) < s_.noised_share;
      const torch::Tensor level = (lo + (hi - lo) * torch::rand({n}, opts)).exp();
      sigma = torch::where(noised, level, torch::zeros_like(level));
      const torch::Tensor s4 = sigma.view({n, 1, 1, 1});
      images = (images + s4 * torch::randn_like(images)) * torch::rsqrt(1.0 + s4 * s4);
    }
    torch::Tensor img, txt;
    {
      auto scope = ctx.autocast("main");
      img = module_->net->encode_image(images, sigma).to(torch::kFloat);
      txt = module_->net->encode_text(tokens, bpe.end_token()).to(torch::kFloat);
    }
    torch::Tensor loss = clip::clip_loss(img, txt, module_->net->logit_scale);
    if (!lexicon_.empty()) {
      // The lexicon's text-only term: each term's features pulled toward its anchor's (a synonym
      // or the broader term in the same template), which is held fixed: the anchors are caption
      // words the images ground, and only the pull, with no in-batch negatives, is wanted (an
      // InfoNCE over lexicon pairs pushed a tote away from a handbag and lost what a bag is).
      const int64_t n = std::min<int64_t>(s_.lexicon_batch, static_cast<int64_t>(lexicon_.size()));
      std::vector<size_t> pick(lexicon_.size());
      std::iota(pick.begin(), pick.end(), size_t{0});
      std::shuffle(pick.begin(), pick.end(), rng);
      std::vector<std::string> terms, anchors;
      for (int64_t i = 0; i < n; ++i) {
        auto [term, anchor] = clip::lexicon_pair(lexicon_[pick[i]], rng);
        terms.push_back(std::move(term));
        anchors.push_back(std::move(anchor));
      }
      const auto dev = batch.x.device();
      const torch::Tensor a = clip::tokenize(bpe, terms, s_.context).to(dev);
      const torch::Tensor b = clip::tokenize(bpe, anchors, s_.context).to(dev);
      torch::Tensor ta, tb;
      {
        auto scope = ctx.autocast("main");
        ta = module_->net->encode_text(a, bpe.end_token()).to(torch::kFloat);
        torch::NoGradGuard no_grad;
        tb = module_->net->encode_text(b, bpe.end_token()).to(torch::kFloat);
      }
      const torch::Tensor lex = 1.0 - torch::cosine_similarity(ta, tb, 1).mean();
      ctx.log("lexicon_loss", lex.item<double>());
      loss = loss + s_.lexicon_weight * lex;
    }
    ctx.minimize_all({"main", "gains"}, loss, "loss");
    module_->net->clamp_logit_scale();
    torch::NoGradGuard no_grad;
    const torch::Tensor sim = img.detach().matmul(txt.detach().t());
    const auto target = torch::arange(sim.size(0), sim.options().dtype(torch::kLong));
    ctx.log("batch_acc", sim.argmax(1).eq(target).to(torch::kFloat).mean().item<double>());
    ctx.log("temperature", std::exp(module_->net->logit_scale.item<double>()));
  }

  SampleResult sample(const SampleRequest&) override {
    throw Error(
        "clip draws no images: score a clip run with `genmodels eval RUN --metrics "
        "zeroshot`");
  }

  train::MonitorFn monitor(const TrainSession& s, int64_t every) override {
    if (every <= 0) return {};
    auto test = std::make_shared<data::Dataset>(s.load_test());
    return [this, test](int64_t) {
      const Json j = zero_shot(*test, 1000, 0);
      if (captioned_)
        return std::map<std::string, double>{
            {"image_to_text_recall@5", j.at("image_to_text_recall@5").get<double>()}};
      return std::map<std::string, double>{
          {"zeroshot_held_out", j.at("zeroshot_accuracy_held_out").get<double>()},
          {"zeroshot_train_wording", j.at("zeroshot_accuracy_train_wording").get<double>()}};
    };
  }

  // Radford et al. 2021, Sec. 3.1.4: each class is the normalised mean of its prompts'
  // embeddings; an image's class is its most similar class embedding. Retrieval pairs each of the
  // first min(n, 1000) test images with one held-out caption of its own.
  Json zero_shot(const data::Dataset& test, int64_t n, uint64_t seed) override {
    torch::NoGradGuard no_grad;  // (no dropout or batch statistics: the mode does not matter)
    const clip::Bpe& bpe = tokenizer();
    n = n <= 0 ? test.size() : std::min(n, test.size());
    const torch::Device device = module_->bpe_merges.device();
    const torch::Tensor images = test.x.narrow(0, 0, n), labels = test.y.narrow(0, 0, n);
    const torch::Tensor img = encode_images(images, device);
    Json out = {{"n", n}};
    for (auto w : {clip::Wording::Train, clip::Wording::HeldOut}) {
      if (captioned_) break;  // no classes to prompt for: retrieval only
      std::vector<torch::Tensor> classes;
      for (int64_t c = 0; c < 10; ++c) {
        const torch::Tensor t = encode_texts(bpe, clip::class_prompts(c, w), device).mean(0);
        classes.push_back(t / t.norm());
      }
      const torch::Tensor pred = img.matmul(torch::stack(classes).t()).argmax(1).cpu();
      const torch::Tensor hit = pred.eq(labels).to(torch::kDouble);
      const std::string key = w == clip::Wording::Train ? "train_wording" : "held_out";
      out["zeroshot_accuracy_" + key] = hit.mean().item<double>();
      std::vector<double> per_class;  // which classes the wording fails on
      for (int64_t c = 0; c < 10; ++c) {
        const torch::Tensor in = labels.eq(c);
        per_class.push_back(in.any().item<bool>() ? hit.masked_select(in).mean().item<double>()
                                                  : 0.0);
      }
      out["zeroshot_per_class_" + key] = per_class;
    }
    const int64_t r = std::min<int64_t>(n, 1000);
    std::mt19937_64 rng(seed);
    std::vector<std::string> captions;
    if (captioned_)
      for (int64_t i = 0; i < r; ++i) captions.push_back(normalise_caption(test.captions.at(i)));
    else
      captions = make_captions(images.narrow(0, 0, r), labels.narrow(0, 0, r),
                               clip::Wording::HeldOut, rng);
    const torch::Tensor txt = encode_texts(bpe, captions, device);
    const torch::Tensor sim = img.narrow(0, 0, r).matmul(txt.t()).cpu();
    // Rank of the true partner: how many others score at least as high (ties count against, as
    // identical captions of different images cannot be told apart).
    auto recall = [&](const torch::Tensor& s, int64_t k) {
      const torch::Tensor diag = s.diagonal().unsqueeze(1);
      const torch::Tensor rank = (s >= diag).sum(1) - 1;
      return rank.lt(k).to(torch::kDouble).mean().item<double>();
    };
    out["retrieval_n"] = r;
    out["image_to_text_recall@1"] = recall(sim, 1);
    out["image_to_text_recall@5"] = recall(sim, 5);
    out["text_to_image_recall@1"] = recall(sim.t(), 1);
    out["text_to_image_recall@5"] = recall(sim.t(), 5);
    out["temperature"] = std::exp(module_->net->logit_scale.item<double>());
    return out;
  }

  torch::Tensor image_text_similarity(const torch::Tensor& images,
                                      const std::vector<std::string>& texts) override {
    if (images.dim() != 4 || images.size(0) != static_cast<int64_t>(texts.size()))
      throw Error("clip score: " + std::to_string(texts.size()) + " prompts for images of shape " +
                  c10::str(images.sizes()) + " (one prompt per image)");
    if (images.sizes().slice(1) != torch::IntArrayRef(info_.shape))
      throw Error("clip score: the clip run scores " + shape_text(info_.shape) + " images, got " +
                  shape_text(images.sizes().slice(1).vec()) +
                  " (resize the samples or train clip on data of their size)");
    torch::NoGradGuard no_grad;
    const torch::Tensor img = encode_images(images, module_->bpe_merges.device());
    return (img.cpu() * text_features(texts)).sum(1);
  }

  torch::Tensor text_features(const std::vector<std::string>& texts) override {
    torch::NoGradGuard no_grad;
    const torch::Device device = module_->bpe_merges.device();
    std::vector<std::string> normalised;
    for (const auto& t : texts) normalised.push_back(normalise_caption(t));
    std::vector<torch::Tensor> parts;
    for (size_t i = 0; i < normalised.size(); i += 500) {
      const size_t end = std::min(normalised.size(), i + 500);
      parts.push_back(
          encode_texts(tokenizer(), {normalised.begin() + i, normalised.begin() + end}, device));
    }
    if (parts.empty()) return torch::zeros({0, s_.embed_dim});
    return torch::cat(parts).cpu();
  }

  torch::Tensor noisy_image_text_logits(const torch::Tensor& x_t, const torch::Tensor& sigma,
                                        const torch::Tensor& text) override {
    if (x_t.dim() != 4 || x_t.sizes().slice(1) != torch::IntArrayRef(info_.shape))
      throw Error("clip guidance: the clip run encodes " + shape_text(info_.shape) +
                  " images, the sampler holds " + shape_text(x_t.sizes().slice(1).vec()) +
                  " (train clip on data of the diffusion run's size)");
    const torch::Device device = module_->bpe_merges.device();
    torch::Tensor img;
    {
      nn::AutocastScope scope(bf16_ ? nn::Precision::Bf16 : nn::Precision::Fp32);
      // Above the training range (80) x_t is noise to the encoder as well: no extrapolation.
      img = module_->net->encode_image(x_t.to(device), sigma.to(device).clamp_max(80.0))
                .to(torch::kFloat);
    }
    const double scale = std::exp(module_->net->logit_scale.item<double>());
    return scale * (img * text.to(device, torch::kFloat)).sum(1);
  }

  std::vector<std::string> caption_images(const torch::Tensor& images, const torch::Tensor& labels,
                                          uint64_t seed) override {
    if (captioned_) return {};
    std::mt19937_64 rng(seed);
    return make_captions(images, labels, clip::Wording::Train, rng);
  }

  // "a photo of a sneaker": the first training template and synonym.
  std::string class_prompt(int64_t label) const override {
    if (captioned_ || label < 0 || label > 9) return "";
    return "a photo of " + clip::with_article(clip::class_synonyms(label, clip::Wording::Train)[0]);
  }

 private:
  static std::string shape_text(const std::vector<int64_t>& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
    return out;
  }

  // Writes the learned merges into the checkpoint buffer and the run's bpe.json.
  void learned(const clip::Bpe& bpe, const std::string& example, size_t corpus, TrainSession& s) {
    {
      torch::NoGradGuard no_grad;
      module_->bpe_merges.fill_(-1);
      for (size_t i = 0; i < bpe.merges().size(); ++i) {
        module_->bpe_merges[i][0] = bpe.merges()[i].first;
        module_->bpe_merges[i][1] = bpe.merges()[i].second;
      }
    }
    bpe_.reset();
    if (!is_primary_process()) return;
    s.run.create();
    bpe.save(s.run.path() + "/bpe.json");
    std::cerr << "genmodels: clip: " << bpe.merges().size() << " BPE merges learned from " << corpus
              << " training captions (vocabulary " << bpe.vocab_size() << " tokens), e.g. \""
              << example << "\" -> " << bpe.encode(example).size() << " tokens\n";
  }

  // Lower-case ASCII, whitespace runs as one space, trimmed (as CLIP's tokenizer cleans text).
  static std::string normalise_caption(const std::string& text) {
    std::string out;
    bool space = false;
    for (unsigned char c : text) {
      if (std::isspace(c)) {
        space = !out.empty();
        continue;
      }
      if (space) out += ' ';
      space = false;
      out += static_cast<char>(c < 0x80 ? std::tolower(c) : c);
    }
    return out;
  }

  std::vector<std::string> captions_of(const torch::Tensor& index) const {
    const torch::Tensor idx = index.cpu().to(torch::kLong).contiguous();
    std::vector<std::string> out;
    for (int64_t i = 0; i < idx.numel(); ++i)
      out.push_back(captions_.at(idx.data_ptr<int64_t>()[i]));
    return out;
  }

  torch::Tensor measure_all(const torch::Tensor& x) const {
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < x.size(0); i += 4096)
      parts.push_back(clip::measure_images(x.narrow(0, i, std::min<int64_t>(4096, x.size(0) - i))));
    return torch::cat(parts).contiguous();
  }

  // One caption per image: its label's synonym in a template of wording `w`, with the attribute
  // words its measurements earn against the training set's thresholds.
  std::vector<std::string> make_captions(const torch::Tensor& x, const torch::Tensor& y,
                                         clip::Wording w, std::mt19937_64& rng) const {
    const torch::Tensor m = clip::measure_images(x.cpu()).contiguous();
    const torch::Tensor labels = y.cpu().to(torch::kLong).contiguous();
    const auto t = clip::AttributeThresholds::from_tensor(module_->thresholds.cpu());
    const double* p = m.data_ptr<double>();
    const int64_t* l = labels.data_ptr<int64_t>();
    std::vector<std::string> out;
    for (int64_t i = 0; i < m.size(0); ++i) {
      const clip::ImageAttributes a{p[3 * i], p[3 * i + 1], p[3 * i + 2]};
      out.push_back(clip::make_caption(l[i], clip::attribute_words(a, l[i], t), w, rng));
    }
    return out;
  }

  torch::Tensor encode_images(const torch::Tensor& x, torch::Device device) {
    std::vector<torch::Tensor> parts;
    nn::AutocastScope scope(bf16_ ? nn::Precision::Bf16 : nn::Precision::Fp32);
    for (int64_t i = 0; i < x.size(0); i += 500) {
      const torch::Tensor b = x.narrow(0, i, std::min<int64_t>(500, x.size(0) - i)).to(device);
      parts.push_back(module_->net->encode_image(b).to(torch::kFloat));
    }
    return torch::cat(parts);
  }

  torch::Tensor encode_texts(const clip::Bpe& bpe, const std::vector<std::string>& texts,
                             torch::Device device) {
    nn::AutocastScope scope(bf16_ ? nn::Precision::Bf16 : nn::Precision::Fp32);
    const torch::Tensor tokens = clip::tokenize(bpe, texts, s_.context).to(device);
    return module_->net->encode_text(tokens, bpe.end_token()).to(torch::kFloat);
  }

  // model.lexicon: the WordNet entries below model.lexicon_roots (clip/lexicon.h).
  void load_lexicon() {
    lexicon_.clear();
    if (s_.lexicon.empty()) return;
    std::vector<std::string> roots;
    std::stringstream ss(s_.lexicon_roots);
    for (std::string r; std::getline(ss, r, ',');)
      if (!r.empty()) roots.push_back(r);
    if (roots.empty())
      throw Error("model.lexicon_roots is empty: give WordNet senses, e.g. clothing#1");
    lexicon_ = clip::load_wordnet_lexicon(s_.lexicon, roots);
    if (lexicon_.empty())
      throw Error("model.lexicon: " + s_.lexicon + " has no entry below " + s_.lexicon_roots +
                  " with a synonym or a broader term; give other model.lexicon_roots");
    std::cerr << "genmodels: clip: lexicon of " << lexicon_.size() << " WordNet entries below "
              << s_.lexicon_roots << "\n";
  }

  // The BPE also learns from one pair of every lexicon entry, so its words are not all bytes.
  void add_lexicon_texts(std::vector<std::string>& corpus, uint64_t seed) const {
    std::mt19937_64 rng(seed ^ 0x6c6578u);
    for (const auto& e : lexicon_) {
      auto [term, anchor] = clip::lexicon_pair(e, rng);
      corpus.push_back(std::move(term));
      corpus.push_back(std::move(anchor));
    }
  }

  // The BPE of the merges buffer (rebuilt after training sets it or a checkpoint loads it).
  const clip::Bpe& tokenizer() {
    const torch::Tensor m = module_->bpe_merges.cpu();
    if (!bpe_ || !torch::equal(m, bpe_source_)) {
      std::vector<std::pair<int64_t, int64_t>> merges;
      for (int64_t i = 0; i < m.size(0) && m[i][0].item<int64_t>() >= 0; ++i)
        merges.emplace_back(m[i][0].item<int64_t>(), m[i][1].item<int64_t>());
      bpe_ = std::make_unique<clip::Bpe>(clip::Bpe::from_merges(merges, "checkpoint bpe_merges"));
      bpe_source_ = m.clone();
    }
    return *bpe_;
  }

  DataInfo info_;
  ClipSettings s_;
  bool bf16_ = false;
  bool captioned_ = false;                   ///< captions:DIR data (else Fashion-MNIST captions)
  std::vector<std::string> captions_;        ///< captions:DIR: the training captions, normalised
  std::vector<clip::LexiconEntry> lexicon_;  ///< model.lexicon's entries (empty = off)
  ClipModule module_;
  std::unique_ptr<clip::Bpe> bpe_;
  torch::Tensor bpe_source_;
};

}  // namespace

std::vector<ModelEntry> clip_entries() {
  ModelEntry e;
  e.name = "clip";
  e.family = "clip";
  e.description =
      "CLIP (Radford et al. 2021): ViT image encoder + causal text transformer, symmetric "
      "InfoNCE, trained on captions made from Fashion-MNIST; zero-shot eval";
  e.config_keys = clip_keys().keys();
  // Radford et al. 2021, Sec. 2.5 / App. F: AdamW (beta2 0.98, decoupled weight decay), warm-up
  // then cosine decay; a smaller model and batch than theirs.
  e.defaults = {
      {"train.batch_size", "256"},     {"train.optimizer", "adamw"},  {"train.lr", "5e-4"},
      {"train.beta2", "0.98"},         {"train.weight_decay", "0.1"}, {"train.warmup_steps", "200"},
      {"train.lr_schedule", "cosine"}, {"train.ema_decay", "0.999"},  {"train.eval_every", "500"}};
  e.create = [](const Config& c, const DataInfo& info) -> std::unique_ptr<Model> {
    return std::make_unique<ClipModel>(c, info);
  };
  return {e};
}

}  // namespace gm
