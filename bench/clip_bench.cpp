// CLIP train-step throughput (issue #17) side by side with an identical PyTorch-Python model
// (bench/clip_reference.py, run through Debian's /usr/bin/python3).
//
//   build/clip_bench [--json PATH] [--threads 2] [--warmup 3] [--iters 10] [--no-python]
//                    [--configs clip,clip-bf16]
//   GM_BENCH_PROFILE=PREFIX also writes a Chrome trace of 3 more steps per config.
//
// The networks are the `clip` registry defaults (ViT patch 4 over 1x28x28, width 128, 4 layers;
// causal text transformer width 128, 4 layers, context 24; embed 64) on a batch of 256 random
// 8-bit images and 256 Fashion-MNIST training captions tokenised by a BPE learned from 20,000
// such captions, so the token rows are as long as in training. One timed step is what the
// trainer does for clip: zero_grad, both encoders, symmetric InfoNCE, item, backward, gradient
// clipping and AdamW per parameter group (decay on matrices and embeddings, none on gains, biases
// and the temperature), the temperature clamp, and the EMA of the weights. The caption making of
// the C++ step (measuring 256 images, 256 captions, tokenising) is timed on its own and not in the
// step, since the twin takes the same fixed tokens. The Python twin is the straightforward
// PyTorch model (nn.Linear, full-context text transformer, end token by argmax) and must first
// reproduce the C++ loss and gradient norm on the fixed batch.
#include <cstdio>
#include <random>

#include "bench_util.h"
#include "genmodels/clip/bpe.h"
#include "genmodels/clip/captions.h"
#include "genmodels/clip/clip_nets.h"
#include "genmodels/nn/precision.h"

using gm::Json;
namespace B = gm::bench;

namespace {

struct Net {
  gm::clip::ClipNet net{nullptr};
  std::vector<torch::Tensor> decay, no_decay;
};

Net make_net() {
  gm::clip::VisionOptions v;
  v.channels = 1;
  v.image_size = 28;
  v.patch = 4;
  v.embed_dim = 64;
  v.transformer = {128, 4, 4, 4, false};
  gm::clip::TextEncoderOptions t;
  t.vocab_size = 256 + 300 + 2;
  t.context = 24;
  t.embed_dim = 64;
  t.transformer = {128, 4, 4, 4, true};
  torch::manual_seed(1234);
  Net n;
  n.net = gm::clip::ClipNet(v, t);
  std::tie(n.decay, n.no_decay) = gm::clip::decay_groups(*n.net);
  return n;
}

double grad_norm(const std::vector<torch::Tensor>& ps) {
  double s = 0;
  for (const auto& p : ps)
    if (p.grad().defined()) s += p.grad().pow(2).sum().item<double>();
  return std::sqrt(s);
}

}  // namespace

int main(int argc, char** argv) try {
  B::TwinArgs a;
  a.json_path = B::source_dir() + "/bench/results/clip_bench.json";
  a.configs = "clip,clip-bf16";
  a.iters = 10;
  B::parse_twin_args(argc, argv, a,
                     "clip_bench [--json PATH] [--threads N] [--warmup N] [--iters N] "
                     "[--configs clip,clip-bf16] [--no-python]");
  const int64_t batch = 256, context = 24;
  const double lr = 5e-4, wd = 0.1, clip = 1.0;

  // Captions as in training: a random training template and synonym per image, no attribute
  // words (they need real images); the BPE learned from 20,000 of them.
  std::mt19937_64 rng(7);
  std::vector<std::string> corpus;
  for (int i = 0; i < 20000; ++i)
    corpus.push_back(
        gm::clip::make_caption(int64_t(rng() % 10), {}, gm::clip::Wording::Train, rng));
  const gm::clip::Bpe bpe = gm::clip::Bpe::train(corpus, 300);
  torch::manual_seed(0);
  const torch::Tensor images =
      torch::randint(0, 256, {batch, 1, 28, 28}).to(torch::kFloat32) / 127.5 - 1;
  const torch::Tensor labels = torch::randint(0, 10, {batch}, torch::kLong);
  std::vector<std::string> captions(corpus.begin(), corpus.begin() + batch);
  const torch::Tensor tokens = gm::clip::tokenize(bpe, captions, context);

  // The caption making the C++ train step does besides the network (not in the twin).
  std::vector<double> cap;
  for (int i = 0; i < 10; ++i) {
    const auto t0 = B::Clock::now();
    const torch::Tensor m = gm::clip::measure_images(images);
    std::vector<std::string> c;
    for (int64_t j = 0; j < batch; ++j)
      c.push_back(
          gm::clip::make_caption(labels[j].item<int64_t>(), {}, gm::clip::Wording::Train, rng));
    (void)gm::clip::tokenize(bpe, c, context);
    cap.push_back(B::secs(t0));
  }

  const std::string dir = B::temp_dir("clip_bench");
  Json manifest, out;
  out["load_before"] = B::load_string();
  out["threads"] = a.threads;
  out["caption_making_s"] = B::median(cap);
  const auto configs = B::split_list(a.configs);
  for (const auto& name : configs) {
    if (name != "clip" && name != "clip-bf16")
      throw std::runtime_error("--configs: unknown '" + name + "'");
    const std::string d = dir + "/" + name;
    std::filesystem::create_directories(d);
    Net n = make_net();
    Json j = {{"name", name},
              {"batch", batch},
              {"lr", lr},
              {"clip", clip},
              {"weight_decay", wd},
              {"context", context},
              {"bf16", name == "clip-bf16"},
              {"end_token", bpe.end_token()},
              {"vocab_size", 256 + 300 + 2}};
    j["params"] = B::write_state(*n.net, d);
    gm::io::write_npy(d + "/images.npy", images);
    gm::io::write_npy(d + "/tokens.npy", tokens);
    n.net->zero_grad();
    torch::Tensor loss;
    {
      gm::nn::AutocastScope scope(name == "clip-bf16" ? gm::nn::Precision::Bf16
                                                      : gm::nn::Precision::Fp32);
      loss = gm::clip::clip_loss(n.net->encode_image(images).to(torch::kFloat),
                                 n.net->encode_text(tokens, bpe.end_token()).to(torch::kFloat),
                                 n.net->logit_scale);
    }
    loss.backward();
    j["check_loss"] = loss.item<double>();
    j["check_grad_norm"] = grad_norm(n.net->parameters());
    manifest["configs"].push_back(j);
  }
  std::ofstream(dir + "/manifest.json") << manifest.dump(1);
  out["python"] = B::run_twin("clip_reference.py", dir, a);
  const Json& py = out["python"];

  std::printf(
      "\nCLIP train step, batch %lld, %d threads, load %s (C++ caption making %.1f ms, "
      "not in the step)\n",
      (long long)batch, a.threads, B::load_string().c_str(), B::median(cap) * 1e3);
  std::printf("%-12s %10s %12s %12s %12s %9s\n", "config", "params", "C++ ms/step", "C++ img/s",
              "Py img/s", "speedup");
  for (const auto& name : configs) {
    Net n = make_net();
    const bool bf16 = name == "clip-bf16";
    auto adamw = [&](const std::vector<torch::Tensor>& ps, double decay) {
      return std::make_unique<torch::optim::AdamW>(
          ps, torch::optim::AdamWOptions(lr).betas({0.9, 0.98}).weight_decay(decay));
    };
    auto opt_d = adamw(n.decay, wd), opt_n = adamw(n.no_decay, 0.0);
    gm::train::Ema ema(*n.net, 0.999, true);
    std::vector<double> total, fwd, bwd, optim;
    B::StepProfiler profiler(name, a.warmup + a.iters, 3);  // GM_BENCH_PROFILE
    for (int i = 0; i < profiler.steps(); ++i) {
      profiler.at(i);
      const auto t0 = B::Clock::now();
      opt_d->zero_grad();
      opt_n->zero_grad();
      torch::Tensor loss;
      {
        gm::nn::AutocastScope scope(bf16 ? gm::nn::Precision::Bf16 : gm::nn::Precision::Fp32);
        loss = gm::clip::clip_loss(n.net->encode_image(images).to(torch::kFloat),
                                   n.net->encode_text(tokens, bpe.end_token()).to(torch::kFloat),
                                   n.net->logit_scale);
      }
      (void)loss.item<double>();
      const auto t1 = B::Clock::now();
      loss.backward();
      const auto t2 = B::Clock::now();
      torch::nn::utils::clip_grad_norm_(n.decay, clip);
      torch::nn::utils::clip_grad_norm_(n.no_decay, clip);
      opt_d->step();
      opt_n->step();
      n.net->clamp_logit_scale();
      ema.update(*n.net, i + 1);
      const auto t3 = B::Clock::now();
      if (i < a.warmup || i >= a.warmup + a.iters) continue;  // warm-up and profiled steps
      total.push_back(B::secs(t0, t3));
      fwd.push_back(B::secs(t0, t1));
      bwd.push_back(B::secs(t1, t2));
      optim.push_back(B::secs(t2, t3));
    }
    const double med = B::median(total);
    Json row = {{"batch", batch},
                {"cpp_median_s", med},
                {"cpp_img_per_s", batch / med},
                {"cpp_phases",
                 {{"forward_s", B::median(fwd)},
                  {"backward_s", B::median(bwd)},
                  {"optimizer_ema_s", B::median(optim)}}}};
    int64_t params = 0;
    for (const auto& p : n.net->parameters()) params += p.numel();
    double py_ips = 0, speedup = 0;
    if (py.contains(name) && py[name].contains("median_s")) {
      py_ips = batch / py[name]["median_s"].get<double>();
      speedup = (batch / med) / py_ips;
      row["python_img_per_s"] = py_ips;
      row["speedup"] = speedup;
      row["python_phases"] = py[name]["phases"];
      row["python_validation"] = py[name]["validation"];
    }
    out["train"][name] = row;
    std::printf("%-12s %10lld %12.1f %12.0f %12.0f %8.2fx\n", name.c_str(), (long long)params,
                med * 1e3, batch / med, py_ips, speedup);
    std::printf("    phases ms (fwd / bwd / clip+AdamW+EMA): C++ %.1f / %.1f / %.1f",
                B::median(fwd) * 1e3, B::median(bwd) * 1e3, B::median(optim) * 1e3);
    if (row.contains("python_phases")) {
      const Json& p = row["python_phases"];
      std::printf("   Python %.1f / %.1f / %.1f", p["forward_s"].get<double>() * 1e3,
                  p["backward_s"].get<double>() * 1e3, p["optimizer_s"].get<double>() * 1e3);
    }
    std::printf("\n");
  }
  B::finish(out, a, dir);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "clip_bench: %s\n", e.what());
  return 1;
}
