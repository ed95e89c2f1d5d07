// VAE train-step throughput (issue #6, performance part) side by side with an identical
// PyTorch-Python model (bench/vae_reference.py, run through Debian's /usr/bin/python3).
//
//   build/vae_bench [--json PATH] [--threads 2] [--warmup 5] [--iters 40] [--no-python]
//                   [--configs conv-logistic,conv-logistic-bf16,mlp-bernoulli,mlp-bernoulli-bf16]
//                   (conv-logistic-cl, conv-logistic-cl-bf16: channels-last, the twin likewise)
//
// Each configuration is built through the registry ("vae" defaults + a few --set values) for
// Fashion-MNIST-shaped data (1x28x28, batch 128). The C++ side writes its weights, a batch, its
// binarised target and the reparameterisation noise; the Python twin must reproduce the loss and
// the gradient norm (1e-4 relative) before it times anything. Both then time the trainer's step
// (zero_grad, loss with fresh noise/binarisation, item, backward, clip train.grad_clip, Adam, EMA
// 0.999). OpenBLAS runs single-threaded on both sides (its pool fights OpenMP; see unet_bench);
// the C++ VAE's fully connected layers split their GEMMs over the threads themselves
// (gm::nn::Linear) and its transposed convolutions run on oneDNN (gm::nn::UpConv2x). A -bf16 row
// runs model.precision=bf16 against a bf16 twin and is also compared with the fp32 twin.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "bench_util.h"
#include "genmodels/vae/vae.h"

using gm::Json;
namespace B = gm::bench;

namespace {

struct BenchConfig {
  std::string name;
  std::vector<std::string> sets;
};

const std::vector<BenchConfig> kConfigs = {
    {"conv-logistic", {"model.arch=conv", "model.likelihood=logistic"}},
    {"mlp-bernoulli", {"model.arch=mlp", "model.likelihood=bernoulli"}},
    {"mlp-logistic", {"model.arch=mlp", "model.likelihood=logistic"}},
    {"conv-logistic-bf16",
     {"model.arch=conv", "model.likelihood=logistic", "model.precision=bf16"}},
    {"mlp-bernoulli-bf16",
     {"model.arch=mlp", "model.likelihood=bernoulli", "model.precision=bf16"}},
};

std::shared_ptr<gm::vae::VaeImpl> vae_of(gm::Model& m) {
  for (auto& c : m.module().named_children())
    if (c.key() == "vae") return std::dynamic_pointer_cast<gm::vae::VaeImpl>(c.value());
  throw std::runtime_error("no vae in the vae module");
}

const char* likelihood_name(gm::vae::Likelihood l) {
  switch (l) {
    case gm::vae::Likelihood::Bernoulli:
      return "bernoulli";
    case gm::vae::Likelihood::Logistic:
      return "logistic";
    case gm::vae::Likelihood::Gaussian:
      return "gaussian";
  }
  return "";
}

// Writes weights + a validation batch for one configuration; returns its manifest entry.
Json write_config(gm::Model& model, const gm::Config&, const std::string& dir, int64_t) {
  std::filesystem::create_directories(dir);
  auto v = vae_of(model);
  const auto& o = v->options();
  Json j = {{"arch", o.arch},         {"shape", o.shape},
            {"latent", o.latent},     {"hidden", o.hidden},
            {"channels", o.channels}, {"likelihood", likelihood_name(o.likelihood)}};
  j["bf16"] = o.bf16;
  j["channels_last"] = o.channels_last && o.arch == "conv";
  j["params"] = B::write_state(model.module(), dir);
  // Validation: fixed 8-bit batch, target and noise; loss = mean(-log p(x|z) + KL).
  torch::manual_seed(7);
  torch::Tensor x = torch::randint(0, 256, {16, 1, 28, 28}).to(torch::kFloat32) / 127.5 - 1;
  torch::Tensor target =
      o.likelihood == gm::vae::Likelihood::Bernoulli ? torch::bernoulli((x + 1) * 0.5) : x;
  torch::Tensor eps = torch::randn({16, o.latent});
  model.module().zero_grad();
  auto [mu, logvar] = v->encode(target);
  torch::Tensor z = mu + torch::exp(0.5 * logvar) * eps;
  torch::Tensor loss =
      (-v->log_likelihood(target, v->decode(z)) + gm::vae::kl_standard_normal(mu, logvar)).mean();
  loss.backward();
  double sq = 0;
  for (auto& p : model.module().parameters())
    if (p.grad().defined()) sq += p.grad().square().sum().item<double>();
  model.module().zero_grad();
  gm::io::write_npy(dir + "/check_x.npy", x);
  gm::io::write_npy(dir + "/check_target.npy", target);
  gm::io::write_npy(dir + "/check_eps.npy", eps);
  j["check_loss"] = loss.item<double>();
  j["check_grad_norm"] = std::sqrt(sq);
  return j;
}

}  // namespace

int main(int argc, char** argv) try {
  B::TwinArgs a;
  a.json_path = B::source_dir() + "/bench/results/vae_bench.json";
  a.configs = "conv-logistic,conv-logistic-bf16,mlp-bernoulli,mlp-bernoulli-bf16";
  a.warmup = 5, a.iters = 40;
  B::parse_twin_args(argc, argv, a,
                     "vae_bench [--json PATH] [--threads N] [--warmup N] [--iters N] "
                     "[--configs conv-logistic,mlp-bernoulli,mlp-logistic] [--no-python]");
  std::vector<B::TwinSpec> specs;
  for (const auto& name : B::split_list(a.configs)) {
    // conv-...-cl: the same configuration channels-last (model.memory_format; the twin likewise).
    std::string base = name;
    const bool nhwc = base.find("-cl") != std::string::npos;
    if (nhwc) base.erase(base.find("-cl"), 3);
    const BenchConfig* bc = nullptr;
    for (const auto& c : kConfigs)
      if (c.name == base) bc = &c;
    if (!bc) throw std::runtime_error("--configs: unknown '" + name + "'");
    std::vector<std::string> sets = bc->sets;
    sets.push_back("train.batch_size=128");
    sets.push_back("model.prior=standard");  // the twin's N(0, I) (the default learns one)
    sets.push_back(nhwc ? "model.memory_format=channels_last" : "model.memory_format=nchw");
    specs.push_back({name, "vae", sets});
  }
  B::run_twin_bench(a, specs, "vae_reference.py", write_config);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "vae_bench: " << e.what() << "\n";
  return 2;
}
