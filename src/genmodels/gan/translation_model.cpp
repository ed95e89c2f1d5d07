#include "genmodels/gan/translation_model.h"

#include "genmodels/core/error.h"
#include "genmodels/data/dataset.h"
#include "genmodels/gan/freeze.h"
#include "genmodels/gan/image_pool.h"
#include "genmodels/gan/losses.h"
#include "genmodels/gan/translation_nets.h"
#include "genmodels/nn/precision.h"

namespace gm {
namespace {

// The model.* (and data.direction) settings of both translation models, bound by
// translation_keys(); each model reads the keys it lists.
struct TranslationSettings {
  std::string direction = "AtoB";  ///< data.direction (pix2pix)
  std::string loss = "ns";         ///< model.loss
  double lambda_l1 = 100.0;        ///< model.lambda_l1 (pix2pix)
  double lambda_cycle = 10.0;      ///< model.lambda_cycle (cyclegan)
  // model.lambda_identity (cyclegan). The paper's 0.5 (Sec. 5.2, for painting -> photo colours)
  // pulls each generator toward the identity, which fights a change of shape: 30-minute
  // sneaker <-> ankle boot, 0.5 -> 0.1 on one machine: class accuracy 84.0/76.0% -> 96.8/92.2%
  // (the misses stay in their source class), FID 127/111 -> 40/50.
  double lambda_identity = 0.1;
  int64_t pool_size = 50;          ///< model.pool_size (cyclegan)
  int64_t g_channels = 64;         ///< model.g_channels
  int64_t g_blocks = 6;            ///< model.g_blocks (cyclegan; pix2pix: at the bottleneck)
  int64_t d_channels = 64;         ///< model.d_channels
  int64_t d_layers = 0;            ///< model.d_layers (0 = by image size)
  double dropout = 0.5;            ///< model.dropout (pix2pix)
  bool test_dropout = false;       ///< sample.test_dropout (pix2pix)
  std::string norm = "batch";      ///< model.norm
  std::string precision = "fp32";  ///< model.precision

  static TranslationSettings defaults(const std::string& name) {
    TranslationSettings s;
    if (name == "cyclegan") {
      s.loss = "lsgan";
      s.norm = "instance";
      s.g_channels = 32;
    } else {
      s.g_blocks = 2;  // 15-minute fmnist-edges class accuracy 0.849-0.851 (0 blocks) -> 0.852
    }
    return s;
  }
};

KeyTable<TranslationSettings> translation_keys(const std::string& name) {
  using O = TranslationSettings;
  KeyTable<O> t;
  const bool p2p = name == "pix2pix";
  if (p2p)
    t.add("data.direction", &O::direction,
          "translate A -> B (AtoB) or B -> A (BtoA); A is the left half / first folder",
          {"AtoB", "BtoA"});
  t.add("model.loss", &O::loss,
        "GAN loss: ns (the paper's cross-entropy), hinge, lsgan (least squares), wgan",
        gan::loss_names());
  if (p2p) {
    t.add("model.lambda_l1", &O::lambda_l1, "weight of the L1 loss to the target (eq. 4)");
    t.add("model.dropout", &O::dropout, "dropout in the innermost decoder layers (0 = off)");
    t.add("sample.test_dropout", &O::test_dropout,
          "translate with dropout on, as Isola et al. do (off by default: deterministic, and "
          "better FID and class accuracy on fmnist-edges)");
  } else {
    t.add("model.lambda_cycle", &O::lambda_cycle, "weight of the cycle-consistency losses");
    t.add(
        "model.lambda_identity", &O::lambda_identity,
        "identity loss weight as a fraction of model.lambda_cycle (0 = off; the paper's 0.5 keeps "
        "colours in painting -> photo but holds back changes of shape)");
    t.add("model.pool_size", &O::pool_size,
          "generated images kept for the discriminators (0 = off)");
  }
  t.add("model.g_blocks", &O::g_blocks,
        p2p ? "residual blocks at the U-Net's bottleneck when its smallest map is larger than 1x1 "
              "(28x28 images: 7x7)"
            : "residual blocks of the generators");
  t.add("model.g_channels", &O::g_channels, "generator width (first layer)");
  t.add("model.d_channels", &O::d_channels, "discriminator width (first layer)");
  t.add("model.d_layers", &O::d_layers,
        "PatchGAN stride-2 layers (0 = largest whose patch is at most half the image)");
  t.add("model.norm", &O::norm, "normalisation layers", {"batch", "instance"});
  t.add("model.precision", &O::precision,
        "network arithmetic: fp32, bf16 autocast (CPU; auto: where the CPU has native bf16) for "
        "the generators and discriminators "
        "(weights, losses and the image pools stay fp32)",
        nn::precision_choices());
  return t;
}

// Interleaves rows of images (each N x C x H x W) as N grid rows of len(rows) columns, converting
// gray to RGB when the rows differ in channels.
torch::Tensor grid_rows(std::vector<torch::Tensor> rows) {
  int64_t c = 1;
  for (const auto& r : rows) c = std::max(c, r.size(1));
  for (auto& r : rows) r = data::convert_channels(r.to(torch::kFloat).cpu(), c);
  return torch::stack(rows, 1).flatten(0, 1).clamp(-1, 1);
}

// Shared parts: the two domains of a batch, the fixed preview examples, batched inference.
class TranslationModel : public Model {
 public:
  TranslationModel(const std::string& name, const Config& c, const DataInfo& info)
      : name_(name), info_(info) {
    s_ = TranslationSettings::defaults(name);
    translation_keys(name).read_into(c, s_);
    loss_ = gan::parse_loss(s_.loss);
    norm_ = gan::parse_norm(s_.norm);
    bf16_ = nn::parse_precision(s_.precision, "model.precision") == nn::Precision::Bf16;
    if (!info.is_image() || info.channels_a <= 0 || info.channels_a >= info.shape[0])
      throw Error(name + " trains on two-domain image data: " +
                  (name == "pix2pix"
                       ? "a paired dataset (fmnist-edges, fmnist-inpaint, paired:DIR, "
                         "paired:DIR_A,DIR_B)"
                       : "--data DOMAIN_A --data-b DOMAIN_B (e.g. fashion-mnist:7 and "
                         "fashion-mnist:9)") +
                  "; " + info.dataset + " is not");
    if (info.shape[1] != info.shape[2])
      throw Error(name + " takes square images, got " + std::to_string(info.shape[1]) + "x" +
                  std::to_string(info.shape[2]) + "; resize with --set data.image_size=N");
    if (s_.g_channels < 1 || s_.d_channels < 1 || s_.d_layers < 0)
      throw Error("model.g_channels and model.d_channels must be >= 1, model.d_layers >= 0");
    ca_ = info.channels_a;
    cb_ = info.shape[0] - ca_;
    size_ = info.shape[1];
    d_layers_ = s_.d_layers > 0 ? s_.d_layers : gan::patch_layers_for(size_);
  }

  // The preview examples: the first 4 (cyclegan: of each domain) test examples.
  Json train(TrainSession& s) override {
    preview_ = s.load_test().x.slice(0, 0, 8).clone();
    return Model::train(s);
  }

  SampleResult sample(const SampleRequest&) override {
    if (!preview_.defined())
      throw Error(name_ +
                  " translates images rather than sampling them: use `genmodels translate " +
                  "RUN --input DIR|FILE.npy|DATASET`");
    torch::NoGradGuard no_grad;
    nn::AutocastScope scope(precision());
    SampleResult r;
    r.x = preview_grid(preview_.to(device())).to(torch::kFloat);
    r.nrow = 3;
    r.params = {{"model", name_}, {"columns", preview_columns()}};
    return r;
  }

 protected:
  virtual torch::Tensor preview_grid(const torch::Tensor& pairs) = 0;
  virtual std::string preview_columns() const = 0;

  torch::Device device() { return module().parameters().front().device(); }
  nn::Precision precision() const { return bf16_ ? nn::Precision::Bf16 : nn::Precision::Fp32; }
  // The main optimizer options with bf16 autocast for StepContext::autocast when asked for.
  train::OptimizerOptions with_precision(train::OptimizerOptions o) const {
    o.bf16 = bf16_;
    return o;
  }
  torch::Tensor domain_a(const torch::Tensor& x) const { return x.narrow(1, 0, ca_); }
  torch::Tensor domain_b(const torch::Tensor& x) const { return x.narrow(1, ca_, cb_); }

  // Runs `net` over images in chunks (no grad) on the model's device; float CPU out.
  template <class Net>
  torch::Tensor apply(Net& net, const torch::Tensor& images, int64_t expect_channels) {
    if (images.dim() != 4 || images.size(1) != expect_channels || images.size(2) != size_ ||
        images.size(3) != size_)
      throw Error(name_ + ": input images must be N x " + std::to_string(expect_channels) + " x " +
                  std::to_string(size_) + " x " + std::to_string(size_) + ", got " +
                  std::to_string(images.size(0)) + " x " + std::to_string(images.size(1)) + " x " +
                  std::to_string(images.size(2)) + " x " + std::to_string(images.size(3)));
    torch::NoGradGuard no_grad;
    nn::AutocastScope scope(precision());
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < images.size(0); i += 256) {
      const int64_t n = std::min<int64_t>(256, images.size(0) - i);
      parts.push_back(
          net->forward(images.narrow(0, i, n).to(device(), torch::kFloat)).to(torch::kFloat).cpu());
    }
    return torch::cat(parts);
  }

  void log_scores(train::StepContext& ctx, const std::string& prefix, const torch::Tensor& real,
                  const torch::Tensor& fake) const {
    const bool prob = loss_ == gan::Loss::NonSaturating;
    ctx.log(prefix + "real", (prob ? torch::sigmoid(real) : real).mean().item<double>());
    ctx.log(prefix + "fake", (prob ? torch::sigmoid(fake) : fake).mean().item<double>());
  }

  std::string name_;
  DataInfo info_;
  TranslationSettings s_;
  gan::Loss loss_ = gan::Loss::NonSaturating;
  gan::NormKind norm_ = gan::NormKind::Batch;
  bool bf16_ = false;
  int64_t ca_ = 0, cb_ = 0, size_ = 0, d_layers_ = 1;
  torch::Tensor preview_;
};

// ------------------------------------------------------------------------------------ pix2pix
struct Pix2PixNetImpl : torch::nn::Module {
  Pix2PixNetImpl(const gan::UnetOptions& g_opts, const gan::PatchOptions& d_opts)
      : g(register_module("g", gan::UnetGenerator(g_opts))),
        d(register_module("d", gan::PatchDiscriminator(d_opts))) {}
  gan::UnetGenerator g;
  gan::PatchDiscriminator d;
};
TORCH_MODULE(Pix2PixNet);

class Pix2Pix : public TranslationModel {
 public:
  Pix2Pix(const Config& c, const DataInfo& info)
      : TranslationModel("pix2pix", c, info), net_(nullptr) {
    if (s_.lambda_l1 < 0 || s_.dropout < 0 || s_.dropout >= 1 || s_.g_blocks < 0)
      throw Error("model.lambda_l1 and model.g_blocks must be >= 0 and model.dropout in [0, 1)");
    a_to_b_ = s_.direction == "AtoB";
    c_in_ = a_to_b_ ? ca_ : cb_;
    c_out_ = a_to_b_ ? cb_ : ca_;
    gan::UnetOptions g;
    g.in_channels = c_in_;
    g.out_channels = c_out_;
    g.size = size_;
    g.channels = s_.g_channels;
    g.max_channels = 8 * s_.g_channels;
    g.dropout = s_.dropout;
    g.test_dropout = s_.test_dropout;
    g.blocks = s_.g_blocks;
    g.norm = norm_;
    gan::PatchOptions d;
    d.in_channels = c_in_ + c_out_;
    d.channels = s_.d_channels;
    d.layers = d_layers_;
    d.norm = norm_;
    net_ = Pix2PixNet(g, d);
    gan::init_translation_weights(*net_);
    net_->to(torch::Device(c.get_string("device")));
  }

  torch::nn::Module& module() override { return *net_; }
  std::vector<train::OptimizerSpec> optimizers(const train::OptimizerOptions& main) override {
    return {{"g", net_->g->parameters(), with_precision(main)},
            {"d", net_->d->parameters(), with_precision(main)}};
  }
  std::vector<train::EmaSpec> ema_targets() override { return {{"g", net_->g.get()}}; }

  // Isola et al. 2017, Sec. 3.3: a D step on (input, target) vs (input, G(input)) with the loss
  // halved, then a G step on cGAN + lambda * L1 with D frozen.
  void train_step(const data::Batcher::Batch& batch, train::StepContext& ctx) override {
    const torch::Tensor src = a_to_b_ ? domain_a(batch.x) : domain_b(batch.x);
    const torch::Tensor tgt = a_to_b_ ? domain_b(batch.x) : domain_a(batch.x);
    torch::Tensor fake, d_real, d_fake;
    {
      auto g_scope = ctx.autocast("g");
      fake = net_->g->forward(src).to(torch::kFloat);
      auto d_scope = ctx.autocast("d");
      d_real = net_->d->forward(torch::cat({src, tgt}, 1)).to(torch::kFloat);
      d_fake = net_->d->forward(torch::cat({src, fake.detach()}, 1)).to(torch::kFloat);
    }
    ctx.minimize("d", 0.5 * gan::discriminator_loss(loss_, d_real, d_fake));
    log_scores(ctx, "d_", d_real, d_fake);
    gan::FreezeScope frozen(*net_->d);
    const torch::Tensor l1 = (fake - tgt).abs().mean();
    torch::Tensor adv;
    {
      auto d_scope = ctx.autocast("d");
      adv = gan::generator_loss(loss_,
                                net_->d->forward(torch::cat({src, fake}, 1)).to(torch::kFloat));
    }
    ctx.log("g_gan", adv.item<double>());
    ctx.log("l1", 0.5 * l1.item<double>());  // on [0, 1] pixels
    ctx.minimize("g", adv + s_.lambda_l1 * l1);
  }

  SampleResult translate(const torch::Tensor& images, const std::string& direction,
                         uint64_t seed) override {
    const std::string trained = a_to_b_ ? "AtoB" : "BtoA";
    if (!direction.empty() && direction != trained)
      throw Error("this pix2pix run translates " + trained + " only; train another with --set " +
                  "data.direction=" + direction);
    torch::manual_seed(seed);  // the test-time dropout
    SampleResult r;
    r.x = apply(net_->g, images, c_in_).clamp(-1, 1);
    r.params = {{"model", "pix2pix"},
                {"direction", trained},
                {"seed", std::to_string(seed)},
                {"test_dropout", s_.test_dropout ? "true" : "false"}};
    return r;
  }
  std::string default_direction() const override { return a_to_b_ ? "AtoB" : "BtoA"; }
  int64_t input_channels(const std::string&) const override { return c_in_; }

 protected:
  torch::Tensor preview_grid(const torch::Tensor& pairs) override {
    const torch::Tensor src = a_to_b_ ? domain_a(pairs) : domain_b(pairs);
    const torch::Tensor tgt = a_to_b_ ? domain_b(pairs) : domain_a(pairs);
    return grid_rows({src, net_->g->forward(src), tgt});
  }
  std::string preview_columns() const override { return "input | output | target"; }

 private:
  Pix2PixNet net_;
  bool a_to_b_ = true;
  int64_t c_in_ = 1, c_out_ = 1;
};

// ------------------------------------------------------------------------------------ CycleGAN
struct CycleGanNetImpl : torch::nn::Module {
  CycleGanNetImpl(const gan::ResnetOptions& g_opts, const gan::PatchOptions& d_opts,
                  int64_t pool_size, std::vector<int64_t> image_shape)
      : g_a(register_module("g_a", gan::ResnetGenerator(g_opts))),
        g_b(register_module("g_b", gan::ResnetGenerator(g_opts))),
        d_a(register_module("d_a", gan::PatchDiscriminator(d_opts))),
        d_b(register_module("d_b", gan::PatchDiscriminator(d_opts))),
        pool_a(register_module("pool_a", gan::ImagePool(pool_size, image_shape))),
        pool_b(register_module("pool_b", gan::ImagePool(pool_size, image_shape))) {}
  gan::ResnetGenerator g_a, g_b;     ///< A -> B, B -> A
  gan::PatchDiscriminator d_a, d_b;  ///< judges domain B, domain A
  gan::ImagePool pool_a, pool_b;     ///< generated B images (for d_a), generated A (for d_b)
};
TORCH_MODULE(CycleGanNet);

class CycleGan : public TranslationModel {
 public:
  CycleGan(const Config& c, const DataInfo& info)
      : TranslationModel("cyclegan", c, info), net_(nullptr) {
    if (ca_ != cb_)
      throw Error("cyclegan: domain A has " + std::to_string(ca_) + " channels and domain B " +
                  std::to_string(cb_) + "; convert with --set data.channels=1 or 3");
    if (s_.lambda_cycle < 0 || s_.lambda_identity < 0 || s_.pool_size < 0 || s_.g_blocks < 0)
      throw Error(
          "model.lambda_cycle, model.lambda_identity, model.pool_size and model.g_blocks must "
          "be >= 0");
    gan::ResnetOptions g;
    g.in_channels = g.out_channels = ca_;
    g.size = size_;
    g.channels = s_.g_channels;
    g.blocks = s_.g_blocks;
    g.norm = norm_;
    gan::PatchOptions d;
    d.in_channels = ca_;
    d.channels = s_.d_channels;
    d.layers = d_layers_;
    d.norm = norm_;
    net_ = CycleGanNet(g, d, s_.pool_size, std::vector<int64_t>{ca_, size_, size_});
    gan::init_translation_weights(*net_);
    net_->to(torch::Device(c.get_string("device")));
  }

  torch::nn::Module& module() override { return *net_; }
  std::vector<train::OptimizerSpec> optimizers(const train::OptimizerOptions& main) override {
    return {{"g_a", net_->g_a->parameters(), with_precision(main)},
            {"g_b", net_->g_b->parameters(), with_precision(main)},
            {"d_a", net_->d_a->parameters(), with_precision(main)},
            {"d_b", net_->d_b->parameters(), with_precision(main)}};
  }
  std::vector<train::EmaSpec> ema_targets() override {
    return {{"g_a", net_->g_a.get()}, {"g_b", net_->g_b.get()}};
  }

  // Zhu et al. 2017, Sec. 3-4: the generators on the joint loss (GAN + cycle + identity) with
  // both discriminators frozen, then each discriminator on real vs pooled generated images, its
  // loss halved.
  void train_step(const data::Batcher::Batch& batch, train::StepContext& ctx) override {
    const torch::Tensor a = domain_a(batch.x), b = domain_b(batch.x);
    torch::Tensor fake_a, fake_b;
    {
      gan::FreezeScope frozen({net_->d_a.get(), net_->d_b.get()});
      // Every network output goes back to fp32 before a loss (a no-op without bf16).
      auto scope = ctx.autocast("g_a");
      auto g = [](gan::ResnetGenerator& net, const torch::Tensor& x) {
        return net->forward(x).to(torch::kFloat);
      };
      auto d = [](gan::PatchDiscriminator& net, const torch::Tensor& x) {
        return net->forward(x).to(torch::kFloat);
      };
      fake_b = g(net_->g_a, a);
      fake_a = g(net_->g_b, b);
      const torch::Tensor cycle_a = (g(net_->g_b, fake_b) - a).abs().mean();
      const torch::Tensor cycle_b = (g(net_->g_a, fake_a) - b).abs().mean();
      const torch::Tensor adv = gan::generator_loss(loss_, d(net_->d_a, fake_b)) +
                                gan::generator_loss(loss_, d(net_->d_b, fake_a));
      torch::Tensor loss = adv + s_.lambda_cycle * (cycle_a + cycle_b);
      if (s_.lambda_identity > 0) {
        const torch::Tensor idt =
            (g(net_->g_a, b) - b).abs().mean() + (g(net_->g_b, a) - a).abs().mean();
        loss = loss + s_.lambda_cycle * s_.lambda_identity * idt;
        ctx.log("identity_l1", 0.25 * idt.item<double>());
      }
      ctx.log("g_gan", adv.item<double>());
      ctx.log("cycle_l1_a", 0.5 * cycle_a.item<double>());  // on [0, 1] pixels
      ctx.log("cycle_l1_b", 0.5 * cycle_b.item<double>());
      ctx.minimize_all({"g_a", "g_b"}, loss, "loss_g");
    }
    const torch::Tensor pooled_b = net_->pool_a->query(fake_b.detach());
    torch::Tensor ra, fa, rb, fb;
    {
      auto scope = ctx.autocast("d_a");
      ra = net_->d_a->forward(b).to(torch::kFloat);
      fa = net_->d_a->forward(pooled_b).to(torch::kFloat);
    }
    ctx.minimize("d_a", 0.5 * gan::discriminator_loss(loss_, ra, fa));
    log_scores(ctx, "d_a_", ra, fa);
    const torch::Tensor pooled_a = net_->pool_b->query(fake_a.detach());
    {
      auto scope = ctx.autocast("d_b");
      rb = net_->d_b->forward(a).to(torch::kFloat);
      fb = net_->d_b->forward(pooled_a).to(torch::kFloat);
    }
    ctx.minimize("d_b", 0.5 * gan::discriminator_loss(loss_, rb, fb));
    log_scores(ctx, "d_b_", rb, fb);
  }

  SampleResult translate(const torch::Tensor& images, const std::string& direction,
                         uint64_t seed) override {
    if (!direction.empty() && direction != "AtoB" && direction != "BtoA")
      throw Error("--direction must be AtoB or BtoA, got '" + direction + "'");
    const bool a_to_b = direction != "BtoA";
    SampleResult r;
    r.x = (a_to_b ? apply(net_->g_a, images, ca_) : apply(net_->g_b, images, cb_)).clamp(-1, 1);
    r.params = {{"model", "cyclegan"},
                {"direction", a_to_b ? "AtoB" : "BtoA"},
                {"seed", std::to_string(seed)}};
    return r;
  }
  std::string default_direction() const override { return "AtoB"; }
  int64_t input_channels(const std::string& direction) const override {
    return direction == "BtoA" ? cb_ : ca_;
  }

 protected:
  torch::Tensor preview_grid(const torch::Tensor& pairs) override {
    const torch::Tensor a = domain_a(pairs).slice(0, 0, 4), b = domain_b(pairs).slice(0, 4, 8);
    const torch::Tensor fb = net_->g_a->forward(a), fa = net_->g_b->forward(b);
    return torch::cat(
        {grid_rows({a, fb, net_->g_b->forward(fb)}), grid_rows({b, fa, net_->g_a->forward(fa)})});
  }
  std::string preview_columns() const override {
    return "A | G_A(A) | G_B(G_A(A)) (rows 1-4), B | G_B(B) | G_A(G_B(B)) (rows 5-8)";
  }

 private:
  CycleGanNet net_;
};

}  // namespace

std::vector<ModelEntry> translation_entries() {
  std::vector<ModelEntry> out;
  for (const std::string name : {"pix2pix", "cyclegan"}) {
    ModelEntry e;
    e.name = name;
    e.family = "implicit";
    e.description =
        name == "pix2pix"
            ? "pix2pix (Isola et al. 2017): paired image translation, U-Net G, PatchGAN D, "
              "cGAN + 100 L1 (data: fmnist-edges, fmnist-inpaint, paired:DIR)"
            : "CycleGAN (Zhu et al. 2017): unpaired translation, two ResNet G, two PatchGAN D, "
              "LSGAN + cycle + identity, image pools (--data A --data-b B)";
    e.config_keys = translation_keys(name).keys(TranslationSettings::defaults(name));
    // Both papers: Adam(2e-4, beta1 0.5), LR constant for half the training, then linear decay.
    e.defaults = {{"train.batch_size", name == "pix2pix" ? "32" : "16"},
                  {"train.lr", "2e-4"},
                  {"train.beta1", "0.5"},
                  {"train.beta2", "0.999"},
                  {"train.warmup_steps", "0"},
                  {"train.grad_clip", "0"},
                  {"train.lr_schedule", "linear"},
                  {"train.ema_decay", "0.999"},
                  {"data.hflip", "true"}};
    // pix2pix runs stored before model.g_blocks had no blocks at the bottleneck.
    if (name == "pix2pix") e.stored_run_defaults = {{"model.g_blocks", "0"}};
    e.create = [name](const Config& c, const DataInfo& info) -> std::unique_ptr<Model> {
      if (name == "pix2pix") return std::make_unique<Pix2Pix>(c, info);
      return std::make_unique<CycleGan>(c, info);
    };
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace gm
