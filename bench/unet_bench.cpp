// U-Net train-step and DDIM-sampling benchmark of the default `ddpm` configuration (issue #3,
// performance part), side by side with an identical PyTorch-Python model
// (bench/unet_reference.py, run by this program through Debian's /usr/bin/python3).
//
//   build-bench/unet_bench [--json PATH] [--threads 2] [--quick] [--no-python] [--no-profile]
//       [--variants nchw,channels_last,nchw_no_onednn,bf16,nchw_1thread,nchw_avx512_aten,...]
//       [--openblas-default] [--no-peak] [--no-sample] [--train-iters N] [--sample-n N]
//       [--py-variants nchw,channels_last,bf16] [--py-sample-variants nchw,channels_last,bf16,...]
//       [--sample-variants nchw,channels_last,bf16,bf16_channels_last,nchw_unfused]
//   (~1 minute on an idle machine; OpenBLAS is set to 1 thread in both C++ and Python unless
//    --openblas-default: its pthread pool fights OpenMP and makes 2-thread steps 10-30x slower.)
//
// 1. Builds the model from the registry defaults (gm::find_model("ddpm") + gm::make_config) for
//    28x28x1 class-conditional (10 classes) Fashion-MNIST-shaped data; the zero-initialised
//    layers (conv2 of each ResBlock, attention proj, conv_out) are filled with small noise so the
//    validation compares non-trivial outputs. Writes every parameter as .npy + check data to a
//    temp dir; the Python twin loads them and must reproduce forward output (1e-4), loss,
//    gradient norm and a 50-step guided DDIM run before it times anything.
// 2. Times the train step as src/genmodels/train/trainer.cpp does it (zero_grad, Model::loss,
//    item, backward, clip_grad_norm_ 1.0, Adam, EMA) on a fixed batch of 64, median of several
//    timed steps after warm-up, under several execution variants (NCHW / channels-last, oneDNN
//    on/off, bf16 autocast, 1 vs 2 threads, ATEN_CPU_CAPABILITY=avx512 in a child process,
//    *_unfused: the fused GroupNorm+SiLU kernels of nn/fused_norm.h off, LibTorch's ops instead).
// 3. Times guided DDIM-50 sampling through Model::sample (batch doubling for guidance) under the
//    --sample-variants (default fp32 and bf16, NCHW and channels-last, and fp32 unfused).
// 4. Counts FLOPs analytically (conv/linear/attention-bmm shapes walked over the real modules;
//    forward = 2 MACs, train step = 3 x forward) and measures the conv peak (3x3 conv forward).
// 5. Profiles one train step (LibTorch's profiler, self time per op) + per-phase wall time.
#include <ATen/autocast_mode.h>
#include <dlfcn.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "genmodels/core/json.h"
#include "genmodels/diffusion/schedule.h"
#include "genmodels/io/npy.h"
#include "genmodels/models/registry.h"
#include "genmodels/nn/fused_norm.h"
#include "genmodels/nn/unet.h"
#include "genmodels/sampling/samplers.h"
#include "genmodels/sampling/timesteps.h"
#include "genmodels/train/ema.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using gm::Json;

namespace {

double secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string source_dir() {  // .../bench/unet_bench.cpp -> ...
  return fs::path(__FILE__).parent_path().parent_path().string();
}

std::string load_string() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

struct Options {
  std::string json_path = source_dir() + "/bench/results/unet_bench.json";
  int threads = 2;
  int train_warmup = 3, train_iters = 8;
  int sample_n = 16, sample_reps = 2;
  bool python = true, profile = true, quick = false;
  std::string child_variant, child_out;  // internal: child process for ATEN_CPU_CAPABILITY
  std::string python_exe = "/usr/bin/python3";
  std::string variants =
      "nchw,nchw_unfused,channels_last,nchw_no_onednn,bf16,bf16_unfused,nchw_1thread,nchw_avx512_"
      "aten";
  std::string py_variants = "nchw,channels_last";
  /// The twin's DDIM variants (none with --no-sample). Its bf16 sampling crawls on a CPU without
  /// native bf16 (0.13-0.38 img/s on an AVX2 EPYC), so leave bf16 out there.
  std::string py_sample_variants = "nchw,channels_last,bf16,bf16_channels_last";
  /// The C++ DDIM variants (names of the train-step variants); the same caveat about bf16.
  std::string sample_variants = "nchw,channels_last,bf16,bf16_channels_last,nchw_unfused";
  bool peak = true, sample = true;
  bool openblas_single = true;   // OpenBLAS's own pthread pool fights OpenMP (see report)
  double variant_budget_s = 25;  // stop timing a variant after this much (>= 3 timed steps)
};

struct Variant {
  std::string name;
  bool channels_last = false, bf16 = false, mkldnn = true;
  int threads = 2;
  bool fused = true;  // the fused GroupNorm+SiLU kernels (nn/fused_norm.h); false = LibTorch ops
};

// ------------------------------------------------------------------------------------ setup
struct Setup {
  gm::Config config;
  gm::DataInfo info;
  std::vector<std::string> names;
  std::vector<torch::Tensor> params;  // reference weights (zero-inits perturbed)
  torch::Tensor train_x, train_y;

  Setup() : config(gm::make_config(gm::find_model("ddpm"))) {
    // Layout is a variant of its own: NCHW unless the variant says channels-last (the model's
    // default, memory_format = auto, is channels-last on CPU).
    config.set("model.memory_format", "nchw", "unet_bench");
    info.dataset = "fashion-mnist-shaped (random)";
    info.shape = {1, 28, 28};
    for (int i = 0; i < 10; ++i) info.class_names.push_back("class" + std::to_string(i));
    torch::manual_seed(1234);
    auto m = create_raw();
    torch::NoGradGuard ng;
    for (auto& p : m->module().named_parameters()) {
      auto t = p.value().detach().clone();
      if (t.abs().max().item<double>() == 0.0) t = torch::randn_like(t) * 0.05;
      names.push_back(p.key());
      params.push_back(t);
    }
    train_x = torch::rand({64, 1, 28, 28}) * 2 - 1;
    train_y = torch::randint(0, 10, {64}, torch::kLong);
  }
  std::unique_ptr<gm::Model> create_raw() const {
    return gm::find_model("ddpm").create(config, info);
  }
  std::unique_ptr<gm::Model> create() const {
    auto m = create_raw();
    torch::NoGradGuard ng;
    auto ps = m->module().parameters();
    for (size_t i = 0; i < ps.size(); ++i) ps[i].copy_(params[i]);
    return m;
  }
};

std::shared_ptr<gm::nn::UNetImpl> unet_of(gm::Model& m) {
  for (auto& c : m.module().named_children())
    if (c.key() == "unet") return std::dynamic_pointer_cast<gm::nn::UNetImpl>(c.value());
  throw std::runtime_error("no unet in the ddpm module");
}

// The U-Net's channels-last mode (weights, and through them every activation).
void to_channels_last(gm::Model& m) { unet_of(m)->set_channels_last(true); }

// --------------------------------------------------------------------------------- FLOPs
// Forward MACs of the U-Net for a batch n x C x h x w, walked over the real modules: every
// Conv2d (N Hout Wout Cout Cin k k), Linear (N in out) and the two attention bmm's
// (q^T k and v w^T: 2 N C L^2 over all heads). GroupNorm/SiLU/softmax/adds are not counted.
double unet_forward_macs(gm::nn::UNetImpl& u, int64_t n, int64_t h, int64_t w) {
  double macs = 0;
  auto conv = [&](const torch::nn::Conv2d& c, int64_t ho, int64_t wo) {
    const auto& wt = c->weight;
    macs += double(n) * ho * wo * wt.size(0) * wt.size(1) * wt.size(2) * wt.size(3);
  };
  auto linear = [&](const torch::nn::Linear& l) {
    macs += double(n) * l->weight.size(0) * l->weight.size(1);
  };
  for (auto& m : u.time_embed->children())
    if (auto l = std::dynamic_pointer_cast<torch::nn::LinearImpl>(m)) linear(torch::nn::Linear(l));
  conv(u.conv_in, h, w);
  auto stage = [&](gm::nn::UNetStageImpl& s) {
    if (s.res) {
      conv(s.res->conv1, h, w);
      conv(s.res->conv2, h, w);
      if (s.res->skip) conv(s.res->skip, h, w);
      linear(s.res->emb_proj);
    }
    if (s.attn) {
      conv(s.attn->qkv, h, w);
      conv(s.attn->proj, h, w);
      const double c = s.attn->qkv->weight.size(1), l = double(h) * w;
      macs += 2.0 * n * c * l * l;
    }
    if (s.op) {
      if (s.upsample) {
        h *= 2, w *= 2;
      } else if (s.op->options.stride()->at(0) == 2) {
        h /= 2, w /= 2;
      }
      conv(s.op, h, w);
    }
  };
  for (auto& m : *u.input_blocks) stage(*m->as<gm::nn::UNetStageImpl>());
  stage(*u.middle_block1);
  stage(*u.middle_block2);
  for (auto& m : *u.output_blocks) stage(*m->as<gm::nn::UNetStageImpl>());
  conv(u.conv_out, h, w);
  return macs;
}

// ------------------------------------------------------------------------------ train step
struct Phases {
  double fwd = 0, bwd = 0, clip = 0, adam = 0, ema = 0;
};

struct TrainRun {
  double median_s = 0;
  std::vector<double> times;
  Phases phases;  // medians
};

struct Trainer {
  std::unique_ptr<gm::Model> model;
  std::unique_ptr<torch::optim::Adam> opt;
  std::unique_ptr<gm::train::Ema> ema;
  torch::Tensor x, y;
  Variant v;
  int64_t n_updates = 0;

  Trainer(const Setup& s, const Variant& var) : v(var) {
    model = s.create();
    auto& mod = model->module();
    if (v.channels_last) to_channels_last(*model);
    opt = std::make_unique<torch::optim::Adam>(
        mod.parameters(),
        torch::optim::AdamOptions(s.config.get_float("train.lr")).betas({0.9, 0.999}).eps(1e-8));
    ema = std::make_unique<gm::train::Ema>(mod, s.config.get_float("train.ema_decay"), true);
    x = v.channels_last ? s.train_x.contiguous(torch::MemoryFormat::ChannelsLast) : s.train_x;
    y = s.train_y;
    mod.train();
  }

  // One step exactly as Trainer::run does it (minus data loading and the LR schedule).
  Phases step() {
    Phases p;
    auto t0 = Clock::now();
    opt->zero_grad();
    if (v.bf16) {
      at::autocast::set_cpu_enabled(true);
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    }
    torch::Tensor loss = model->loss(x, y);
    if (v.bf16) {
      at::autocast::set_cpu_enabled(false);
      at::autocast::clear_cache();
    }
    volatile double lv = loss.item<double>();
    (void)lv;
    auto t1 = Clock::now();
    loss.backward();
    auto t2 = Clock::now();
    torch::nn::utils::clip_grad_norm_(model->module().parameters(), 1.0);
    auto t3 = Clock::now();
    opt->step();
    auto t4 = Clock::now();
    ema->update(model->module(), ++n_updates);
    auto t5 = Clock::now();
    p.fwd = secs(t0, t1), p.bwd = secs(t1, t2), p.clip = secs(t2, t3), p.adam = secs(t3, t4),
    p.ema = secs(t4, t5);
    return p;
  }
};

void apply_variant(const Variant& v) {
  torch::set_num_threads(v.threads);
  at::globalContext().setUserEnabledMkldnn(v.mkldnn);
  gm::nn::set_fused_kernels_enabled(v.fused);
}

TrainRun time_train(const Setup& s, const Variant& v, int warmup, int iters, double budget_s) {
  apply_variant(v);
  torch::manual_seed(0);
  Trainer tr(s, v);
  for (int i = 0; i < warmup; ++i) {
    auto t0 = Clock::now();
    tr.step();
    if (secs(t0, Clock::now()) > budget_s / 5) break;  // pathological variant: keep the run short
  }
  TrainRun r;
  std::vector<double> f, b, c, a, e;
  const auto t_begin = Clock::now();
  for (int i = 0; i < iters && (i < 3 || secs(t_begin, Clock::now()) < budget_s); ++i) {
    auto t0 = Clock::now();
    auto p = tr.step();
    r.times.push_back(secs(t0, Clock::now()));
    f.push_back(p.fwd), b.push_back(p.bwd), c.push_back(p.clip), a.push_back(p.adam),
        e.push_back(p.ema);
  }
  r.median_s = median(r.times);
  r.phases = {median(f), median(b), median(c), median(a), median(e)};
  apply_variant(Variant{});
  return r;
}

// ------------------------------------------------------------------------------- sampling
struct SampleRun {
  double median_s = 0;
  std::vector<double> times;
};

SampleRun time_sample(const Setup& s, const Variant& v, int n, int reps) {
  apply_variant(v);
  auto m = s.create();
  if (v.channels_last) to_channels_last(*m);
  m->module().eval();
  gm::SampleRequest r;
  r.n = n;  // the run's default sampler: DDIM, 50 steps
  r.seed = 1;
  SampleRun out;
  for (int i = 0; i < reps; ++i) {
    if (v.bf16) {
      at::autocast::set_cpu_enabled(true);
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    }
    auto t0 = Clock::now();
    m->sample(r);
    out.times.push_back(secs(t0, Clock::now()));
    if (v.bf16) {
      at::autocast::set_cpu_enabled(false);
      at::autocast::clear_cache();
    }
  }
  out.median_s = median(out.times);
  apply_variant(Variant{});
  return out;
}

// ------------------------------------------------------------------------------ conv peak
struct PeakRow {
  std::string what;
  double gflops;
};

std::vector<PeakRow> conv_peak(int threads, bool quick) {
  torch::set_num_threads(threads);
  torch::NoGradGuard ng;
  std::vector<PeakRow> rows;
  struct Shape {
    int64_t n, c, hw;
  };
  for (auto sh : {Shape{64, 64, 28}, Shape{64, 128, 14}}) {
    for (int layout = 0; layout < 2; ++layout) {
      for (auto dt : {torch::kFloat, torch::kBFloat16}) {
        auto x = torch::randn({sh.n, sh.c, sh.hw, sh.hw}).to(dt);
        auto w = torch::randn({sh.c, sh.c, 3, 3}).to(dt) * 0.05;
        auto b = torch::zeros({sh.c}).to(dt);
        if (layout == 1) {
          x = x.contiguous(torch::MemoryFormat::ChannelsLast);
          w = w.contiguous(torch::MemoryFormat::ChannelsLast);
        }
        const double flop = 2.0 * sh.n * sh.c * sh.c * 9 * sh.hw * sh.hw;
        for (int i = 0; i < 2; ++i) torch::conv2d(x, w, b, 1, 1);
        double best = 1e9;
        for (int i = 0; i < (quick ? 3 : 6); ++i) {
          auto t0 = Clock::now();
          torch::conv2d(x, w, b, 1, 1);
          best = std::min(best, secs(t0, Clock::now()));
        }
        char name[128];
        std::snprintf(name, sizeof name, "3x3 conv N=%lld %lld->%lld %lldx%lld %s %s",
                      (long long)sh.n, (long long)sh.c, (long long)sh.c, (long long)sh.hw,
                      (long long)sh.hw, layout ? "channels-last" : "NCHW",
                      dt == torch::kFloat ? "fp32" : "bf16");
        rows.push_back({name, flop / best / 1e9});
      }
    }
  }
  return rows;
}

// ------------------------------------------------------------------------------- profiler
struct OpRow {
  std::string name;
  double self_ms;
  int64_t calls;
};

// Self time per op name over `steps` calls of `fn` (LibTorch profiler, CPU activities); with
// GM_BENCH_PROFILE_SHAPES=1 per op name and input shapes (where a layout copy comes from).
std::vector<OpRow> profile_ops(const std::function<void()>& fn, int steps, double* total_ms) {
  using namespace torch::autograd::profiler;
  namespace pi = torch::profiler::impl;
  const char* by_shape_env = std::getenv("GM_BENCH_PROFILE_SHAPES");
  const bool by_shape = by_shape_env && std::string(by_shape_env) == "1";
  enableProfiler(pi::ProfilerConfig(pi::ProfilerState::KINETO, by_shape), {pi::ActivityType::CPU});
  auto t0 = Clock::now();
  for (int i = 0; i < steps; ++i) fn();
  *total_ms = secs(t0, Clock::now()) * 1e3 / steps;
  auto result = disableProfiler();
  struct Ev {
    std::string name;
    uint64_t start, end, thread;
  };
  std::vector<Ev> evs;
  for (const auto& e : result->events()) {
    if (e.deviceType() != c10::DeviceType::CPU) continue;
    std::string name = e.name();
    if (by_shape) {
      for (const auto& sh : e.shapes()) name += " " + c10::str(c10::IntArrayRef(sh));
    }
    evs.push_back({name, e.startUs(), e.startUs() + e.durationUs(), e.startThreadId()});
  }
  std::sort(evs.begin(), evs.end(), [](const Ev& a, const Ev& b) {
    return a.thread != b.thread ? a.thread < b.thread
                                : (a.start != b.start ? a.start < b.start : a.end > b.end);
  });
  std::map<std::string, OpRow> agg;
  std::vector<std::pair<const Ev*, double>> stack;  // event, self time so far
  auto flush = [&](const Ev* e, double self) {
    auto& r = agg[e->name];
    r.name = e->name;
    r.self_ms += self / 1e3;
    r.calls += 1;
  };
  uint64_t thread = ~0ull;
  for (const auto& e : evs) {
    if (e.thread != thread) {
      for (auto& p : stack) flush(p.first, p.second);
      stack.clear();
      thread = e.thread;
    }
    while (!stack.empty() && stack.back().first->end <= e.start) {
      flush(stack.back().first, stack.back().second);
      stack.pop_back();
    }
    if (!stack.empty()) stack.back().second -= double(e.end - e.start);
    stack.push_back({&e, double(e.end - e.start)});
  }
  for (auto& p : stack) flush(p.first, p.second);
  std::vector<OpRow> rows;
  for (auto& kv : agg) {
    kv.second.self_ms /= steps;
    kv.second.calls /= steps;
    rows.push_back(kv.second);
  }
  std::sort(rows.begin(), rows.end(),
            [](const OpRow& a, const OpRow& b) { return a.self_ms > b.self_ms; });
  return rows;
}

// One train step as the trainer runs it, phases recorded as user scopes.
std::vector<OpRow> profile_train(const Setup& s, const Variant& v, int steps, double* total_ms) {
  apply_variant(v);
  torch::manual_seed(0);
  Trainer tr(s, v);
  tr.step();
  tr.step();
  auto rows = profile_ops(
      [&] {
        {
          RECORD_USER_SCOPE("step::zero_grad");
          tr.opt->zero_grad();
        }
        // Phases are recorded as user scopes so their untracked time is visible too.
        torch::Tensor loss;
        {
          RECORD_USER_SCOPE("step::forward");
          loss = tr.model->loss(tr.x, tr.y);
          loss.item<double>();
        }
        {
          RECORD_USER_SCOPE("step::backward");
          loss.backward();
        }
        {
          RECORD_USER_SCOPE("step::clip");
          torch::nn::utils::clip_grad_norm_(tr.model->module().parameters(), 1.0);
        }
        {
          RECORD_USER_SCOPE("step::adam");
          tr.opt->step();
        }
        {
          RECORD_USER_SCOPE("step::ema");
          tr.ema->update(tr.model->module(), ++tr.n_updates);
        }
      },
      steps, total_ms);
  apply_variant(Variant{});
  return rows;
}

// One guided sampling evaluation of the network (batch 2n, no grad, eval mode), as
// Model::sample runs it inside every sampler step.
std::vector<OpRow> profile_sample(const Setup& s, const Variant& v, int n, int steps,
                                  double* total_ms) {
  apply_variant(v);
  auto m = s.create();
  if (v.channels_last) to_channels_last(*m);
  m->module().eval();
  auto u = unet_of(*m);
  torch::NoGradGuard ng;
  auto x = torch::randn({2 * n, 1, 28, 28});
  if (v.channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  auto t = torch::full({2 * n}, 500.0);
  auto y = torch::arange(2 * n, torch::kLong).remainder(11);
  if (v.bf16) {
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  }
  u->forward(x, t, y);
  auto rows = profile_ops([&] { u->forward(x, t, y); }, steps, total_ms);
  if (v.bf16) {
    at::autocast::set_cpu_enabled(false);
    at::autocast::clear_cache();
  }
  apply_variant(Variant{});
  return rows;
}

// Category of an op for the summary (self time).
std::string category(const std::string& n) {
  auto has = [&](const char* s) { return n.find(s) != std::string::npos; };
  if (n.rfind("step::", 0) == 0) return "untracked (between ops)";
  if (has("convolution") || has("conv2d") || has("mkldnn") || has("thnn_conv") || has("slow_conv"))
    return "conv fwd+bwd";
  if (has("group_norm") || has("GroupNorm")) return "GroupNorm fwd+bwd";
  if (has("bmm") || has("softmax") || has("Softmax") || has("Bmm")) return "attention bmm+softmax";
  if (has("addmm") || has("mm") || has("linear") || has("Addmm") || has("Mm")) return "linear (mm)";
  if (has("silu") || has("Silu")) return "SiLU fwd+bwd";
  if (has("cat") || has("Cat") || has("narrow") || has("slice") || has("upsample") ||
      has("Upsample") || has("copy") || has("clone") || has("contiguous"))
    return "cat/upsample/copies";
  if (has("addcdiv") || has("addcmul_") || has("sqrt") || has("lerp") || has("zero_") ||
      has("mul_") || has("add_") || has("div_") || has("norm") || has("max") || has("stack"))
    return "optimizer/clip/EMA elementwise";
  return "other elementwise / autograd";
}

// ----------------------------------------------------------------------- validation data
void write_check_dir(const Setup& s, const std::string& dir, const Options& o, Json& manifest) {
  fs::create_directories(dir);
  const auto& c = s.config;
  for (size_t i = 0; i < s.names.size(); ++i)
    gm::io::write_npy(dir + "/param." + s.names[i] + ".npy", s.params[i]);
  auto m = s.create();
  auto u = unet_of(*m);
  const auto& uo = u->options;
  manifest["unet"] = {{"in_channels", uo.in_channels},
                      {"out_channels", uo.out_channels},
                      {"base_channels", uo.base_channels},
                      {"channel_mult", uo.channel_mult},
                      {"num_res_blocks", uo.num_res_blocks},
                      {"attention_levels", uo.attention_levels},
                      {"num_heads", uo.num_heads},
                      {"groups", uo.groups},
                      {"dropout", uo.dropout},
                      {"num_classes", uo.num_classes},
                      {"scale_shift_norm", uo.scale_shift_norm}};
  manifest["params"] = s.names;
  manifest["prediction"] = c.get_string("diffusion.prediction");
  manifest["class_dropout"] = c.get_float("diffusion.class_dropout");
  manifest["num_classes"] = uo.num_classes;
  manifest["lr"] = c.get_float("train.lr");
  manifest["ema_decay"] = c.get_float("train.ema_decay");
  manifest["guidance"] = c.get_float("sample.guidance");

  // forward + backward check on 8 samples, fractional timesteps, one null label
  torch::manual_seed(99);
  auto x = torch::randn({8, 1, 28, 28});
  auto t = torch::rand({8}) * 999;
  auto y = torch::tensor({0, 1, 2, 3, 4, 7, 9, 10}, torch::kLong);
  auto target = torch::randn({8, 1, 28, 28});
  m->module().train();
  auto out = u->forward(x, t, y);
  auto loss = torch::mse_loss(out, target);
  loss.backward();
  std::vector<torch::Tensor> norms;
  for (auto& p : m->module().parameters()) norms.push_back(p.grad().norm());
  manifest["check_loss"] = loss.item<double>();
  manifest["check_grad_norm"] = torch::stack(norms).norm().item<double>();
  gm::io::write_npy(dir + "/check_x.npy", x);
  gm::io::write_npy(dir + "/check_t.npy", t);
  gm::io::write_npy(dir + "/check_y.npy", y);
  gm::io::write_npy(dir + "/check_target.npy", target);
  gm::io::write_npy(dir + "/check_out.npy", out.detach());

  // DDIM-50 with guidance through Model::sample; x_T as Model::sample draws it
  auto sched = gm::diffusion::make_schedule(c.get_string("diffusion.schedule"),
                                            c.get_int("diffusion.timesteps"));
  gm::io::write_npy(dir + "/alphas_cumprod.npy", sched.alphas_cumprod);
  auto ts = gm::sampling::respace_timesteps(
      sched.num_steps(), gm::sampling::find_sampler("ddim").default_steps,
      gm::sampling::parse_spacing(c.get_string("sample.spacing")));
  gm::io::write_npy(dir + "/ddim_timesteps.npy", torch::tensor(ts, torch::kLong));
  m->module().eval();
  gm::SampleRequest r;
  r.n = 4, r.seed = 7;  // the default sampler: DDIM with its default steps
  auto res = m->sample(r);
  auto gen = at::detail::createCPUGenerator(7);
  gm::io::write_npy(dir + "/ddim_xT.npy", torch::randn({4, 1, 28, 28}, gen, torch::kFloat32));
  gm::io::write_npy(dir + "/ddim_labels.npy", res.labels);
  gm::io::write_npy(dir + "/ddim_out.npy", res.x);

  gm::io::write_npy(dir + "/train_x.npy", s.train_x);
  gm::io::write_npy(dir + "/train_y.npy", s.train_y);
  auto sgen = at::detail::createCPUGenerator(1);
  gm::io::write_npy(dir + "/sample_xT.npy",
                    torch::randn({o.sample_n, 1, 28, 28}, sgen, torch::kFloat32));
  gm::io::write_npy(dir + "/sample_labels.npy",
                    torch::arange(o.sample_n, torch::kLong).remainder(10));
  std::ofstream(dir + "/manifest.json") << manifest.dump(1);
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = 0;
  return buf;
}

void usage() {
  std::cout << "unet_bench [--json PATH] [--threads N] [--quick] [--no-python] [--no-profile]\n"
               "           [--train-iters N] [--train-warmup N] [--sample-n N] [--sample-reps N]\n"
               "           [--variants LIST] [--py-variants LIST] [--py-sample-variants LIST]\n"
               "           [--sample-variants LIST]\n"
               "           [--no-peak] [--no-sample]\n"
               "           [--openblas-default] [--variant-budget S] [--python /usr/bin/python3]\n";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--json")
      o.json_path = next();
    else if (a == "--threads")
      o.threads = std::stoi(next());
    else if (a == "--train-iters")
      o.train_iters = std::stoi(next());
    else if (a == "--train-warmup")
      o.train_warmup = std::stoi(next());
    else if (a == "--sample-n")
      o.sample_n = std::stoi(next());
    else if (a == "--sample-reps")
      o.sample_reps = std::stoi(next());
    else if (a == "--python")
      o.python_exe = next();
    else if (a == "--no-python")
      o.python = false;
    else if (a == "--variants")
      o.variants = next();
    else if (a == "--py-variants")
      o.py_variants = next();
    else if (a == "--py-sample-variants")
      o.py_sample_variants = next();
    else if (a == "--sample-variants")
      o.sample_variants = next();
    else if (a == "--no-peak")
      o.peak = false;
    else if (a == "--openblas-default")
      o.openblas_single = false;
    else if (a == "--variant-budget")
      o.variant_budget_s = std::stod(next());
    else if (a == "--no-sample")
      o.sample = false;
    else if (a == "--no-profile")
      o.profile = false;
    else if (a == "--quick")
      o.quick = true;
    else if (a == "--child-train")
      o.child_variant = next();
    else if (a == "--child-out")
      o.child_out = next();
    else if (a == "-h" || a == "--help")
      return usage(), 0;
    else {
      usage();
      return 1;
    }
  }
  if (o.quick) o.train_iters = 4, o.train_warmup = 2, o.sample_n = 8, o.sample_reps = 1;
  // Debian's libopenblas0-pthread runs its own pool of nproc threads for every sgemm (Linear,
  // attention bmm) that spin next to LibTorch's OpenMP threads: with 2 cores, 4 busy threads and
  // train steps that randomly take 10-20x longer. One BLAS thread (LibTorch parallelises around
  // it) is what the Python run gets too, via OPENBLAS_NUM_THREADS=1.
  std::string openblas_note = "default (nproc pthreads)";
  if (o.openblas_single) {
    using SetFn = void (*)(int);
    if (auto fn = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
      fn(1);
      openblas_note = "1 (openblas_set_num_threads; Python: OPENBLAS_NUM_THREADS=1)";
    }
  }
  torch::set_num_threads(o.threads);
  const auto t_begin = Clock::now();
  Setup s;

  if (!o.child_variant.empty()) {  // child: one train variant under the inherited environment
    Variant v{o.child_variant};
    v.threads = o.threads;
    auto r = time_train(s, v, o.train_warmup, o.train_iters, o.variant_budget_s);
    std::ofstream(o.child_out) << Json{{"median_s", r.median_s}, {"times", r.times}}.dump();
    return 0;
  }

  Json out;
  out["load_before"] = load_string();
  out["torch_threads"] = o.threads;
  out["openblas_threads"] = openblas_note;
  out["config"] = {{"model", "ddpm (registry defaults)"},
                   {"data", "28x28x1, 10 classes"},
                   {"batch", 64},
                   {"ddim_steps", gm::sampling::find_sampler("ddim").default_steps},
                   {"guidance", s.config.get_float("sample.guidance")}};
  std::printf("OpenBLAS threads: %s\n", openblas_note.c_str());
  std::printf(
      "unet_bench: ddpm defaults (base %lld, mult %s, res blocks %lld, attention %s, "
      "scale-shift %s, %s prediction), 28x28x1, 10 classes; threads %d; load %s\n",
      (long long)s.config.get_int("model.base_channels"),
      s.config.get_string("model.channel_mult").c_str(),
      (long long)s.config.get_int("model.num_res_blocks"),
      s.config.get_string("model.attention_levels").c_str(),
      s.config.get_bool("model.scale_shift_norm") ? "on" : "off",
      s.config.get_string("diffusion.prediction").c_str(), o.threads, load_string().c_str());

  // ---- FLOPs
  double params = 0;
  for (auto& p : s.params) params += p.numel();
  auto m0 = s.create();
  const double fwd_macs_per_img = unet_forward_macs(*unet_of(*m0), 1, 28, 28);
  const double train_flop = 3.0 * 2.0 * fwd_macs_per_img * 64;  // fwd + ~2x fwd for backward
  const double eval_flop_per_img = 2.0 * fwd_macs_per_img;
  out["flops"] = {{"method",
                   "analytic: conv/linear/attention-bmm shapes walked over the real modules; "
                   "forward = 2*MACs, train step = 3*forward (dX + dW), elementwise/norm ignored"},
                  {"params", params},
                  {"forward_macs_per_image", fwd_macs_per_img},
                  {"train_step_gflop_batch64", train_flop / 1e9}};
  std::printf("params %.0f, forward %.1f MMAC/image, train step (batch 64) %.2f GFLOP\n", params,
              fwd_macs_per_img / 1e6, train_flop / 1e9);

  // ---- validation data + Python reference (it validates before timing)
  char tmpl[] = "/tmp/unet_bench.XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  Json manifest;
  write_check_dir(s, dir, o, manifest);
  Json py;
  bool py_ok = false;
  if (o.python) {
    const std::string script = source_dir() + "/bench/unet_reference.py";
    const std::string pyjson = dir + "/python.json";
    const std::string cmd = std::string(o.openblas_single ? "OPENBLAS_NUM_THREADS=1 " : "") +
                            o.python_exe + " " + script + " --dir " + dir + " --json " + pyjson +
                            " --threads " + std::to_string(o.threads) + " --train-warmup " +
                            std::to_string(o.train_warmup) + " --train-iters " +
                            std::to_string(o.train_iters) + " --sample-reps " +
                            std::to_string(o.sample_reps) + " --variants " + o.py_variants +
                            " --sample-variants '" + (o.sample ? o.py_sample_variants : "") + "'";
    std::printf("running: %s\n", cmd.c_str());
    std::fflush(stdout);
    const int rc = std::system(cmd.c_str());
    std::ifstream f(pyjson);
    if (f) f >> py;
    py_ok = rc == 0 && py.contains("train");
    if (!py_ok) std::printf("Python reference failed or did not validate (status %d)\n", rc);
    if (py.contains("forward_macs_hooks"))
      std::printf("FLOP check: python hooks %.4g MAC (8 images) vs C++ walk %.4g MAC\n",
                  py["forward_macs_hooks"].get<double>(), 8 * fwd_macs_per_img);
  }
  out["python"] = py;

  // ---- conv peak
  std::vector<PeakRow> peak_rows;
  if (o.peak) {
    peak_rows = conv_peak(o.threads, o.quick);
    if (o.threads != 1) {
      for (auto& r : conv_peak(1, o.quick)) peak_rows.push_back({r.what + " 1 thread", r.gflops});
    }
    torch::set_num_threads(o.threads);
  }
  double peak_fp32 = 0, peak_bf16 = 0;
  for (auto& r : peak_rows) {
    std::printf("  peak  %-52s %7.1f GFLOP/s\n", r.what.c_str(), r.gflops);
    out["conv_peak"][r.what] = r.gflops;
    if (r.what.find("fp32") != std::string::npos)
      peak_fp32 = std::max(peak_fp32, r.gflops);
    else
      peak_bf16 = std::max(peak_bf16, r.gflops);
  }
  out["conv_peak_fp32_gflops"] = peak_fp32;
  out["conv_peak_bf16_gflops"] = peak_bf16;

  // ---- train-step variants
  const std::vector<Variant> all_variants = {
      {"nchw", false, false, true, o.threads},
      {"channels_last", true, false, true, o.threads},
      {"nchw_no_onednn", false, false, false, o.threads},
      {"bf16", false, true, true, o.threads},
      {"bf16_channels_last", true, true, true, o.threads},
      {"nchw_1thread", false, false, true, 1},
      {"channels_last_1thread", true, false, true, 1},
      {"nchw_2threads", false, false, true, 2},
      {"channels_last_2threads", true, false, true, 2},
      {"nchw_unfused", false, false, true, o.threads, false},
      {"bf16_unfused", false, true, true, o.threads, false},
  };
  auto pick = [&](const std::string& list) {  // the variants named in a comma-separated list
    std::vector<Variant> picked;
    std::stringstream ss(list);
    std::string name;
    while (std::getline(ss, name, ','))
      for (auto& v : all_variants)
        if (v.name == name) picked.push_back(v);
    return picked;
  };
  const std::vector<Variant> variants = pick(o.variants);
  const std::vector<Variant> sample_variants = pick(o.sample_variants);
  std::map<std::string, TrainRun> train;
  for (const auto& v : variants) {
    int iters = v.name == "nchw_no_onednn" || v.threads != o.threads
                    ? std::max(3, o.train_iters / 2)
                    : o.train_iters;
    TrainRun r;
    try {
      r = time_train(s, v, v.threads == 1 ? 1 : o.train_warmup, iters, o.variant_budget_s);
    } catch (const std::exception& e) {
      apply_variant(Variant{"", false, false, true, o.threads});
      at::autocast::set_cpu_enabled(false);
      at::autocast::clear_cache();
      std::string msg = e.what();
      msg = msg.substr(0, msg.find('\n'));
      std::printf("  C++ train %-20s FAILED: %s\n", v.name.c_str(), msg.c_str());
      out["cpp"]["train_failed"][v.name] = msg;
      continue;
    }
    train[v.name] = r;
    std::printf(
        "  C++ train %-20s %8.1f ms/step %7.1f img/s  (fwd %.0f, bwd %.0f, clip %.1f, "
        "adam %.1f, ema %.1f ms)  load %s\n",
        v.name.c_str(), r.median_s * 1e3, 64 / r.median_s, r.phases.fwd * 1e3, r.phases.bwd * 1e3,
        r.phases.clip * 1e3, r.phases.adam * 1e3, r.phases.ema * 1e3, load_string().c_str());
    std::fflush(stdout);
  }
  if (o.variants.find("nchw_avx512_aten") !=
      std::string::npos) {  // AVX-512 ATen kernels (Debian's build defaults to AVX2): child process
                            // with the env var
    const std::string f = dir + "/child.json";
    const std::string cmd =
        "ATEN_CPU_CAPABILITY=avx512 " + self_exe() +
        (o.openblas_single ? "" : " --openblas-default") + " --child-train nchw --child-out " + f +
        " --threads " + std::to_string(o.threads) + " --train-iters " +
        std::to_string(o.train_iters) + " --train-warmup " + std::to_string(o.train_warmup);
    if (std::system(cmd.c_str()) == 0) {
      Json j;
      std::ifstream(f) >> j;
      TrainRun r;
      r.median_s = j["median_s"].get<double>();
      r.times = j["times"].get<std::vector<double>>();
      train["nchw_avx512_aten"] = r;
      std::printf("  C++ train %-20s %8.1f ms/step %7.1f img/s\n", "nchw_avx512_aten",
                  r.median_s * 1e3, 64 / r.median_s);
    }
  }
  for (auto& [name, r] : train) {
    out["cpp"]["train"][name] = {{"median_s", r.median_s},
                                 {"img_per_s", 64 / r.median_s},
                                 {"gflops", train_flop / r.median_s / 1e9},
                                 {"times", r.times},
                                 {"phases_ms",
                                  {{"forward_loss", r.phases.fwd * 1e3},
                                   {"backward", r.phases.bwd * 1e3},
                                   {"clip", r.phases.clip * 1e3},
                                   {"adam", r.phases.adam * 1e3},
                                   {"ema", r.phases.ema * 1e3}}}};
  }

  // ---- sampling
  std::map<std::string, SampleRun> samp;
  if (o.sample) {
    for (const auto& v : sample_variants)
      samp[v.name] = time_sample(s, v, o.sample_n, o.sample_reps);
  }
  const int steps = static_cast<int>(gm::sampling::find_sampler("ddim").default_steps);
  for (auto& [name, r] : samp) {
    out["cpp"]["sample"][name] = {
        {"median_s", r.median_s},
        {"img_per_s", o.sample_n / r.median_s},
        {"net_evals_per_s", steps / r.median_s},
        {"net_batch", 2 * o.sample_n},
        {"gflops", eval_flop_per_img * 2 * o.sample_n * steps / r.median_s / 1e9},
        {"times", r.times}};
    std::printf("  C++ DDIM-%d guided %-14s %6.2f img/s  %6.2f net evals/s (batch %d)\n", steps,
                name.c_str(), o.sample_n / r.median_s, steps / r.median_s, 2 * o.sample_n);
  }

  // ---- profile
  if (o.profile) {
    auto report = [&](const std::string& key, const std::string& title,
                      const std::vector<OpRow>& rows, double total_ms) {
      std::map<std::string, double> cats;
      double sum = 0;
      for (auto& r : rows) {
        cats[category(r.name)] += r.self_ms;
        sum += r.self_ms;
      }
      std::printf("\nProfile of %s (self time; %.0f ms under the profiler)\n", title.c_str(),
                  total_ms);
      std::vector<std::pair<double, std::string>> cv;
      for (auto& [k, v] : cats) cv.push_back({v, k});
      std::sort(cv.rbegin(), cv.rend());
      for (auto& [v, k] : cv) {
        std::printf("  %-34s %8.1f ms %5.1f%%\n", k.c_str(), v, 100 * v / sum);
        out[key]["categories_ms"][k] = v;
      }
      std::printf("  top ops:\n");
      for (size_t i = 0; i < rows.size() && i < 25; ++i) {
        std::printf("  %-46s %8.2f ms %5lld calls\n", rows[i].name.c_str(), rows[i].self_ms,
                    (long long)rows[i].calls);
        out[key]["top_ops"].push_back(
            {{"name", rows[i].name}, {"self_ms", rows[i].self_ms}, {"calls", rows[i].calls}});
      }
      out[key]["ms_under_profiler"] = total_ms;
    };
    double total_ms = 0;
    auto rows = profile_train(s, all_variants[0], o.quick ? 1 : 2, &total_ms);
    report("profile", "one NCHW fp32 train step", rows, total_ms);
    if (o.sample) {
      for (const auto& v : sample_variants) {
        if (!v.fused) continue;  // NCHW and channels-last, fp32 and bf16
        rows = profile_sample(s, v, o.sample_n, o.quick ? 1 : 2, &total_ms);
        report(
            ("profile_sample_" + v.name).c_str(),
            "one guided sampling forward, " + v.name + ", batch " + std::to_string(2 * o.sample_n),
            rows, total_ms);
      }
    }
  }

  // ---- table
  auto pyv = [&](const char* section, const char* name) -> double {
    if (!py_ok) return 0;
    if (!py.contains(section) || !py[section].contains(name)) return 0;
    return py[section][name]["img_per_s"].get<double>();
  };
  std::printf("\n%-30s %10s %10s %7s %9s %8s\n", "train step (batch 64)", "C++ img/s", "Py img/s",
              "ratio", "GFLOP/s", "%peak");
  auto row = [&](const std::string& label, double cpp, double pyi, double gflops) {
    if (pyi > 0)
      std::printf("%-30s %10.1f %10.1f %6.2fx %9.1f %7.1f%%\n", label.c_str(), cpp, pyi, cpp / pyi,
                  gflops, 100 * gflops / peak_fp32);
    else
      std::printf("%-30s %10.1f %10s %7s %9.1f %7.1f%%\n", label.c_str(), cpp, "-", "-", gflops,
                  100 * gflops / peak_fp32);
  };
  for (auto& [name, r] : train) {
    const char* pyname = name == "nchw"            ? "nchw"
                         : name == "channels_last" ? "channels_last"
                         : name == "bf16"          ? "bf16"
                                                   : "";
    row(name, 64 / r.median_s, *pyname ? pyv("train", pyname) : 0, train_flop / r.median_s / 1e9);
  }
  double best = 0;
  std::string best_name;
  for (auto& [name, r] : train)
    if (64 / r.median_s > best) best = 64 / r.median_s, best_name = name;
  if (py_ok && train.count("nchw")) {
    const double pyn = pyv("train", "nchw");
    std::printf("%-30s %10.1f %10.1f %6.2fx   (best C++ %s vs Python default)\n", "best vs default",
                best, pyn, best / pyn, best_name.c_str());
    out["ratio_same_config_nchw"] = 64 / train["nchw"].median_s / pyn;
    out["ratio_best_cpp_vs_python_default"] = best / pyn;
  }
  // Sampling: each variant against the same variant of the twin, and the best of each side.
  const std::string sname =
      "DDIM-" + std::to_string(steps) + " guided n=" + std::to_string(o.sample_n);
  std::printf("\n%-30s %10s %10s %7s %9s %8s\n", sname.c_str(), "C++ img/s", "Py img/s", "ratio",
              "GFLOP/s", "%peak");
  double best_c = 0, best_p = 0;
  std::string best_cn, best_pn;
  for (auto& [name, r] : samp) {
    const double cpp = o.sample_n / r.median_s, pyi = pyv("sample", name.c_str());
    row(name, cpp, pyi, eval_flop_per_img * 2 * o.sample_n * steps / r.median_s / 1e9);
    if (pyi > 0) out["ratio_sample"][name] = cpp / pyi;
    if (cpp > best_c) best_c = cpp, best_cn = name;
    if (pyi > best_p) best_p = pyi, best_pn = name;
  }
  if (best_p > 0) {
    std::printf("%-30s %10.2f %10.2f %6.2fx   (best C++ %s vs best Python %s)\n", "best vs best",
                best_c, best_p, best_c / best_p, best_cn.c_str(), best_pn.c_str());
    out["ratio_sample_best_vs_best"] = best_c / best_p;
  }
  std::printf(
      "conv peak fp32 %.1f GFLOP/s (bf16 %.1f); targets: C++ >= 1.3x Python, >= 60%% of peak\n",
      peak_fp32, peak_bf16);
  out["load_after"] = load_string();
  out["total_seconds"] = secs(t_begin, Clock::now());
  fs::create_directories(fs::path(o.json_path).parent_path());
  std::ofstream(o.json_path) << out.dump(1);
  std::printf("wrote %s (%.0f s total; load %s)\n", o.json_path.c_str(),
              secs(t_begin, Clock::now()), load_string().c_str());
  fs::remove_all(dir);
  return 0;
}
