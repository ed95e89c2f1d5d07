// GAN train-step throughput (issue #13) side by side with an identical PyTorch-Python model and
// loop (bench/gan_reference.py, run through Debian's /usr/bin/python3).
//
//   build/gan_bench [--json PATH] [--threads 2] [--warmup 3] [--iters 20] [--no-python]
//                   [--configs
//                   dcgan,dcgan-bf16,wgan-gp,dcgan-uncond,wgan-gp-bf16,pix2pix,pix2pix-bf16,
//                    cyclegan,cyclegan-bf16]   (dcgan-cl, wgan-gp-cl, ...: channels-last)
//
// Each configuration is built through the registry ("dcgan" / "wgan-gp" defaults + a few --set
// values) for labelled Fashion-MNIST-shaped data (1x28x28, 10 classes, batch 64). One timed step
// is the model's own train_step (GanModel: n_critic discriminator steps, each drawing fresh z,
// generator forward without grad, D on real and fake, the loss, the gradient penalty when on, Adam;
// then the generator step) driven by a step context that does what the trainer's does (item,
// zero_grad, backward, Adam), plus the EMA of the generator. The Python twin uses
// torch.nn.utils.spectral_norm and nn.ConvTranspose2d, as a Python user would; it must first
// reproduce the C++ discriminator and generator losses and gradient norms on fixed latents (and the
// gradient penalty's fixed interpolation weights) before it times anything.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>

#include "bench_util.h"
#include "genmodels/gan/dcgan.h"
#include "genmodels/gan/losses.h"
#include "genmodels/gan/translation_nets.h"
#include "genmodels/train/step.h"

using gm::Json;
namespace B = gm::bench;

namespace {

struct BenchConfig {
  std::string name, model;
  std::vector<std::string> sets;
};

const std::vector<BenchConfig> kConfigs = {
    {"dcgan", "dcgan", {}},
    {"dcgan-bf16", "dcgan", {"model.precision=bf16"}},
    {"dcgan-uncond", "dcgan", {"model.conditional=false"}},
    {"wgan-gp", "wgan-gp", {}},
    {"wgan-gp-bf16", "wgan-gp", {"model.precision=bf16"}},
    // Translation (edge map -> item shaped data; no dropout so that the twin can validate).
    {"pix2pix", "pix2pix", {"model.dropout=0"}},
    {"pix2pix-bf16", "pix2pix", {"model.dropout=0", "model.precision=bf16"}},
    {"cyclegan", "cyclegan", {}},
    {"cyclegan-bf16", "cyclegan", {"model.precision=bf16"}},
};

bool is_translation(const std::string& model) { return model == "pix2pix" || model == "cyclegan"; }

// The trainer's step context without its bookkeeping: a fixed batch, Adam per named optimizer,
// and the time spent up to the end of each minimize() charged to that optimizer's phase.
class BenchContext : public gm::train::StepContext {
 public:
  BenchContext(const std::vector<gm::train::OptimizerSpec>& specs, gm::data::Batcher::Batch batch)
      : batch_(std::move(batch)) {
    for (const auto& s : specs) {
      auto o = torch::optim::AdamOptions(s.options.lr.lr)
                   .betas({s.options.beta1, s.options.beta2})
                   .eps(s.options.eps);
      slots_[s.name] = {std::make_unique<torch::optim::Adam>(s.params, o), s.options.bf16};
    }
  }
  void start() { mark_ = B::Clock::now(); }
  double minimize_all(const std::vector<std::string>& names, const torch::Tensor& loss,
                      const std::string&) override {
    const double v = loss.item<double>();
    for (const auto& n : names) slots_.at(n).opt->zero_grad();
    loss.backward();
    for (const auto& n : names) slots_.at(n).opt->step();
    phase[names.front()] += B::secs(mark_);
    mark_ = B::Clock::now();
    return v;
  }
  torch::optim::Optimizer& optimizer(const std::string& name) override {
    return *slots_.at(name).opt;
  }
  gm::data::Batcher::Batch next_batch() override { return batch_; }
  void log(const std::string&, double) override {}
  int64_t step() const override { return 0; }
  torch::Device device() const override { return torch::kCPU; }
  bool bf16(const std::string& name) const override { return slots_.at(name).bf16; }

  std::map<std::string, double> phase;  ///< seconds per optimizer in the current step

 private:
  struct Slot {
    std::unique_ptr<torch::optim::Adam> opt;
    bool bf16 = false;
  };
  std::map<std::string, Slot> slots_;
  gm::data::Batcher::Batch batch_;
  B::Clock::time_point mark_;
};

template <class T>
std::shared_ptr<T> child(torch::nn::Module& m, const std::string& name) {
  for (auto& c : m.named_children())
    if (c.key() == name) return std::dynamic_pointer_cast<T>(c.value());
  throw std::runtime_error("no '" + name + "' in the GAN module");
}

double grad_norm(torch::nn::Module& m) {
  double sq = 0;
  for (auto& p : m.parameters())
    if (p.grad().defined()) sq += p.grad().square().sum().item<double>();
  return std::sqrt(sq);
}

// Weights, a fixed batch and fixed latents, and the losses / gradient norms GanModel's step
// computes on them (without the optimizer steps).
Json write_config(gm::Model& model, const gm::Config& c, const std::string& dir, int64_t batch) {
  std::filesystem::create_directories(dir);
  auto g = child<gm::gan::GeneratorImpl>(model.module(), "g");
  auto d = child<gm::gan::DiscriminatorImpl>(model.module(), "d");
  const auto& o = g->options();
  const bool bf16 = c.get_string("model.precision") == "bf16";
  const std::string loss_name = c.get_string("model.loss");
  const auto loss = gm::gan::parse_loss(loss_name);
  double gp_lambda = c.get_float("model.gp_lambda");
  if (gp_lambda == -1.0) gp_lambda = 10.0;
  Json j = {{"shape", o.shape},
            {"latent", o.latent},
            {"num_classes", o.num_classes},
            {"g_channels", o.g_channels},
            {"d_channels", o.d_channels},
            {"spectral_norm", o.spectral_norm},
            {"loss", loss_name},
            {"n_critic", c.get_int("model.n_critic")},
            {"gp_lambda", gp_lambda},
            {"beta1", c.get_float("train.beta1")},
            {"beta2", c.get_float("train.beta2")},
            {"bf16", bf16},
            {"channels_last", o.channels_last}};
  j["params"] = B::write_state(model.module(), dir);
  model.module().train();
  torch::manual_seed(7);
  torch::Tensor x = torch::randint(0, 256, {batch, 1, 28, 28}).to(torch::kFloat32) / 127.5 - 1;
  torch::Tensor y = torch::randint(0, 10, {batch}, torch::kLong);
  torch::Tensor zd = torch::randn({batch, o.latent}), zg = torch::randn({batch, o.latent});
  const torch::Tensor yc = o.num_classes > 0 ? y : torch::Tensor();
  const auto prec = bf16 ? gm::nn::Precision::Bf16 : gm::nn::Precision::Fp32;
  // Discriminator loss (+ gradient penalty with interpolation weights drawn after seed 11).
  model.module().zero_grad();
  torch::Tensor fake, d_real, d_fake;
  {
    torch::NoGradGuard no_grad;
    gm::nn::AutocastScope scope(prec);
    fake = g->forward(zd, yc).to(torch::kFloat);
  }
  {
    gm::nn::AutocastScope scope(prec);
    d_real = d->forward(x, yc).to(torch::kFloat);
    d_fake = d->forward(fake, yc).to(torch::kFloat);
  }
  torch::Tensor ld = gm::gan::discriminator_loss(loss, d_real, d_fake);
  if (gp_lambda > 0) {
    torch::manual_seed(11);
    gm::io::write_npy(dir + "/check_e.npy", torch::rand({batch, 1, 1, 1}));
    torch::manual_seed(11);
    ld = ld + gp_lambda * gm::gan::gradient_penalty(
                              [&](const torch::Tensor& t) { return d->forward(t, yc); }, x, fake);
  }
  ld.backward();
  j["check_d_loss"] = ld.item<double>();
  j["check_d_grad_norm"] = grad_norm(*d);
  // Generator loss.
  model.module().zero_grad();
  torch::Tensor lg;
  {
    gm::nn::AutocastScope scope(prec);
    lg = gm::gan::generator_loss(loss, d->forward(g->forward(zg, yc), yc).to(torch::kFloat));
  }
  lg.backward();
  j["check_g_loss"] = lg.item<double>();
  j["check_g_grad_norm"] = grad_norm(*g);
  model.module().zero_grad();
  for (const auto& [name, t] : std::vector<std::pair<std::string, torch::Tensor>>{
           {"x", x}, {"y", y}, {"zd", zd}, {"zg", zg}})
    gm::io::write_npy(dir + "/check_" + name + ".npy", t);
  return j;
}

// pix2pix / cyclegan: weights, a fixed two-domain batch, and the step's losses and gradient norms
// (pix2pix: D then G; cyclegan: the joint generator loss, then D_A) without optimizer steps.
Json write_translation_config(const std::string& name, gm::Model& model, const gm::Config& c,
                              const std::string& dir, int64_t batch) {
  std::filesystem::create_directories(dir);
  Json j = {{"model", name},
            {"size", 28},
            {"g_channels", c.get_int("model.g_channels")},
            {"d_channels", c.get_int("model.d_channels")},
            {"d_layers", gm::gan::patch_layers_for(28)},
            {"norm", c.get_string("model.norm")},
            {"loss", c.get_string("model.loss")},
            {"beta1", c.get_float("train.beta1")},
            {"beta2", c.get_float("train.beta2")},
            {"bf16", c.get_string("model.precision") == "bf16"}};
  j["g_blocks"] = c.get_int("model.g_blocks");
  if (name == "pix2pix") {
    j["lambda_l1"] = c.get_float("model.lambda_l1");
  } else {
    j["lambda_cycle"] = c.get_float("model.lambda_cycle");
    j["lambda_identity"] = c.get_float("model.lambda_identity");
    j["pool_size"] = c.get_int("model.pool_size");
  }
  j["params"] = B::write_state(model.module(), dir);
  model.module().train();
  torch::manual_seed(7);
  const torch::Tensor x =
      torch::randint(0, 256, {batch, 2, 28, 28}).to(torch::kFloat32) / 127.5 - 1;
  gm::io::write_npy(dir + "/check_x.npy", x);
  const torch::Tensor a = x.narrow(1, 0, 1), b = x.narrow(1, 1, 1);
  const auto loss = gm::gan::parse_loss(c.get_string("model.loss"));
  model.module().zero_grad();
  if (name == "pix2pix") {
    auto g = child<gm::gan::UnetGeneratorImpl>(model.module(), "g");
    auto d = child<gm::gan::PatchDiscriminatorImpl>(model.module(), "d");
    const torch::Tensor fake = g->forward(a);
    torch::Tensor ld =
        0.5 * gm::gan::discriminator_loss(loss, d->forward(torch::cat({a, b}, 1)),
                                          d->forward(torch::cat({a, fake.detach()}, 1)));
    ld.backward();
    j["check_d_loss"] = ld.item<double>();
    j["check_d_grad_norm"] = grad_norm(*d);
    model.module().zero_grad();
    torch::Tensor lg = gm::gan::generator_loss(loss, d->forward(torch::cat({a, fake}, 1))) +
                       c.get_float("model.lambda_l1") * (fake - b).abs().mean();
    lg.backward();
    j["check_g_loss"] = lg.item<double>();
    j["check_g_grad_norm"] = grad_norm(*g);
  } else {
    auto ga = child<gm::gan::ResnetGeneratorImpl>(model.module(), "g_a");
    auto gb = child<gm::gan::ResnetGeneratorImpl>(model.module(), "g_b");
    auto da = child<gm::gan::PatchDiscriminatorImpl>(model.module(), "d_a");
    auto db = child<gm::gan::PatchDiscriminatorImpl>(model.module(), "d_b");
    const double lc = c.get_float("model.lambda_cycle"), li = c.get_float("model.lambda_identity");
    const torch::Tensor fake_b = ga->forward(a), fake_a = gb->forward(b);
    torch::Tensor lg =
        gm::gan::generator_loss(loss, da->forward(fake_b)) +
        gm::gan::generator_loss(loss, db->forward(fake_a)) +
        lc * ((gb->forward(fake_b) - a).abs().mean() + (ga->forward(fake_a) - b).abs().mean()) +
        lc * li * ((ga->forward(b) - b).abs().mean() + (gb->forward(a) - a).abs().mean());
    lg.backward();
    j["check_g_loss"] = lg.item<double>();
    j["check_g_grad_norm"] = std::hypot(grad_norm(*ga), grad_norm(*gb));
    model.module().zero_grad();
    torch::Tensor ld =
        0.5 * gm::gan::discriminator_loss(loss, da->forward(b), da->forward(fake_b.detach()));
    ld.backward();
    j["check_d_loss"] = ld.item<double>();
    j["check_d_grad_norm"] = grad_norm(*da);
  }
  model.module().zero_grad();
  return j;
}

struct Row {
  std::string name, model_name;
  std::unique_ptr<gm::Model> model;
  gm::Config config;
  int64_t batch = 64;
};

// The model's train_step + generator EMA on a fixed batch, timed per optimizer phase.
Json time_steps(Row& r, const B::TwinArgs& a) {
  auto& model = *r.model;
  model.module().train();
  gm::train::OptimizerOptions main;
  main.lr.lr = r.config.get_float("train.lr");
  main.beta1 = r.config.get_float("train.beta1");
  main.beta2 = r.config.get_float("train.beta2");
  torch::manual_seed(0);
  const int64_t channels = is_translation(r.model_name) ? 2 : 1;
  gm::data::Batcher::Batch batch{
      torch::randint(0, 256, {r.batch, channels, 28, 28}).to(torch::kFloat32) / 127.5 - 1,
      torch::randint(0, 10, {r.batch}, torch::kLong)};
  // GM_BENCH_CHANNELS_LAST=1: weights and batch in channels-last layout (an A/B of the layout;
  // measured: pix2pix 7% faster, cyclegan, dcgan and wgan-gp 5-10% slower).
  if (const char* cl = std::getenv("GM_BENCH_CHANNELS_LAST"); cl && std::string(cl) == "1") {
    torch::NoGradGuard ng;
    for (auto& p : model.module().parameters())
      if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
    batch.x = batch.x.contiguous(torch::MemoryFormat::ChannelsLast);
  }
  BenchContext ctx(model.optimizers(main), batch);
  std::vector<std::pair<torch::nn::Module*, gm::train::Ema>> emas;
  for (const auto& e : model.ema_targets())
    emas.emplace_back(e.module, gm::train::Ema(*e.module, 0.999, true));
  std::vector<double> total, dt, gt, et;
  B::StepProfiler profiler(r.name, a.warmup + a.iters, 2);  // GM_BENCH_PROFILE
  for (int i = 0; i < profiler.steps(); ++i) {
    profiler.at(i);
    ctx.phase.clear();
    const auto t0 = B::Clock::now();
    ctx.start();
    model.train_step(batch, ctx);
    const auto t1 = B::Clock::now();
    for (auto& [m, ema] : emas) ema.update(*m, i + 1);
    if (i < a.warmup || i >= a.warmup + a.iters) continue;
    total.push_back(B::secs(t0));
    double d_s = 0, g_s = 0;  // "d", "d_a", "d_b" / "g", "g_a"
    for (const auto& [name, secs] : ctx.phase) (name[0] == 'd' ? d_s : g_s) += secs;
    dt.push_back(d_s);
    gt.push_back(g_s);
    et.push_back(B::secs(t1));
  }
  return {{"median_s", B::median(total)},
          {"phases", {{"d_s", B::median(dt)}, {"g_s", B::median(gt)}, {"ema_s", B::median(et)}}}};
}

}  // namespace

int main(int argc, char** argv) try {
  B::TwinArgs a;
  a.json_path = B::source_dir() + "/bench/results/gan_bench.json";
  a.configs = "dcgan,dcgan-bf16,wgan-gp,pix2pix,cyclegan";
  B::parse_twin_args(argc, argv, a,
                     "gan_bench [--json PATH] [--threads N] [--warmup N] [--iters N] "
                     "[--configs dcgan,dcgan-bf16,dcgan-uncond,wgan-gp,wgan-gp-bf16,pix2pix,"
                     "pix2pix-bf16,cyclegan,cyclegan-bf16] "
                     "[--no-python]");
  gm::DataInfo info;
  info.dataset = "fashion-mnist-shaped (random 8-bit levels, 10 classes)";
  info.shape = {1, 28, 28};
  for (int k = 0; k < 10; ++k) info.class_names.push_back("class" + std::to_string(k));
  gm::DataInfo pair_info;  // one gray image per domain, as fmnist-edges
  pair_info.dataset = "two-domain fashion-mnist-shaped (random 8-bit levels)";
  pair_info.shape = {2, 28, 28};
  pair_info.class_names = {"pairs"};
  pair_info.channels_a = 1;
  const std::string dir = B::temp_dir("gan_bench");
  Json manifest, out;
  out["load_before"] = B::load_string();
  out["threads"] = a.threads;
  std::vector<Row> rows;
  for (const auto& name : B::split_list(a.configs)) {
    // dcgan-cl, wgan-gp-cl-bf16, ...: the configuration channels-last (model.memory_format; the
    // twin likewise).
    std::string base = name;
    const bool nhwc = base.find("-cl") != std::string::npos;
    if (nhwc) base.erase(base.find("-cl"), 3);
    const BenchConfig* bc = nullptr;
    for (const auto& c : kConfigs)
      if (c.name == base) bc = &c;
    if (!bc || (nhwc && is_translation(bc->model)))
      throw std::runtime_error("--configs: unknown '" + name + "'");
    const auto& entry = gm::find_model(bc->model);
    Row r;
    r.name = name;
    r.model_name = bc->model;
    r.config = gm::make_config(entry);
    for (const auto& s : bc->sets) r.config.set_assignment(s);
    if (!is_translation(bc->model))
      r.config.set_assignment(nhwc ? "model.memory_format=channels_last"
                                   : "model.memory_format=nchw");
    r.batch = r.config.get_int("train.batch_size");
    torch::manual_seed(1234);
    const bool translation = is_translation(bc->model);
    r.model = entry.create(r.config, translation ? pair_info : info);
    Json j = translation ? write_translation_config(bc->model, *r.model, r.config, dir + "/" + name,
                                                    r.batch)
                         : write_config(*r.model, r.config, dir + "/" + name, r.batch);
    j["name"] = name;
    j["batch"] = r.batch;
    j["lr"] = r.config.get_float("train.lr");
    manifest["configs"].push_back(j);
    rows.push_back(std::move(r));
  }
  std::ofstream(dir + "/manifest.json") << manifest.dump(1);
  out["python"] = B::run_twin("gan_reference.py", dir, a);
  const Json& py = out["python"];
  std::printf("\nGAN train step (D steps + G step + G EMA), 1x28x28, %d threads, load %s\n",
              a.threads, B::load_string().c_str());
  std::printf("%-14s %6s %10s %12s %12s %12s %9s\n", "config", "batch", "params", "C++ ms/step",
              "C++ img/s", "Py img/s", "speedup");
  for (auto& r : rows) {
    Json cpp = time_steps(r, a);
    const double med = cpp["median_s"].get<double>();
    int64_t params = 0;
    for (auto& p : r.model->module().parameters()) params += p.numel();
    Json row = {{"params", params},
                {"batch", r.batch},
                {"cpp_median_s", med},
                {"cpp_img_per_s", r.batch / med},
                {"cpp_phases", cpp["phases"]}};
    double speedup = 0, py_ips = 0;
    Json pp = Json::object();
    if (py.contains(r.name) && py[r.name].contains("median_s")) {
      py_ips = r.batch / py[r.name]["median_s"].get<double>();
      speedup = (r.batch / med) / py_ips;
      row["python_img_per_s"] = py_ips;
      row["speedup"] = speedup;
      row["python_validation"] = py[r.name]["validation"];
      row["python_phases"] = pp = py[r.name]["phases"];
    }
    out["train"][r.name] = row;
    std::printf("%-14s %6lld %10lld %12.2f %12.0f %12.0f %8.2fx\n", r.name.c_str(),
                (long long)r.batch, (long long)params, med * 1e3, r.batch / med, py_ips, speedup);
    auto ms = [](const Json& j, const char* k) {
      return j.contains(k) ? 1e3 * j[k].get<double>() : 0.0;
    };
    std::printf("    phases ms (D steps / G step / G EMA): C++ %.1f / %.1f / %.1f",
                ms(cpp["phases"], "d_s"), ms(cpp["phases"], "g_s"), ms(cpp["phases"], "ema_s"));
    if (!pp.empty())
      std::printf("   Python %.1f / %.1f / %.1f", ms(pp, "d_s"), ms(pp, "g_s"), ms(pp, "ema_s"));
    std::printf("\n");
  }
  B::finish(out, a, dir);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "gan_bench: " << e.what() << "\n";
  return 2;
}
