// VAE train-step throughput (issue #6, performance part) side by side with an identical
// PyTorch-Python model (bench/vae_reference.py, run through Debian's /usr/bin/python3).
//
//   build/vae_bench [--json PATH] [--threads 2] [--warmup 5] [--iters 40] [--no-python]
//                   [--configs conv-logistic,mlp-bernoulli]
//
// Each configuration is built through the registry ("vae" defaults + a few --set values) for
// Fashion-MNIST-shaped data (1x28x28, batch 128). The C++ side writes its weights, a batch, its
// binarised target and the reparameterisation noise; the Python twin must reproduce the loss and
// the gradient norm (1e-4 relative) before it times anything. Both then time the trainer's step
// (zero_grad, loss with fresh noise/binarisation, item, backward, clip train.grad_clip, Adam, EMA
// 0.999). OpenBLAS runs single-threaded on both sides (its pool fights OpenMP; see unet_bench).
#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "bench_util.h"
#include "genmodels/core/runtime.h"
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
Json write_config(gm::Model& model, const gm::Config& c, const std::string& dir, int64_t batch) {
  std::filesystem::create_directories(dir);
  auto v = vae_of(model);
  const auto& o = v->options();
  Json j = {{"arch", o.arch},
            {"shape", o.shape},
            {"latent", o.latent},
            {"hidden", o.hidden},
            {"channels", o.channels},
            {"likelihood", likelihood_name(o.likelihood)},
            {"batch", batch},
            {"lr", c.get_float("train.lr")},
            {"clip", c.get_float("train.grad_clip")}};
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

int main(int argc, char** argv) {
  std::string json_path = B::source_dir() + "/bench/results/vae_bench.json";
  std::string configs = "conv-logistic,mlp-bernoulli";
  std::string python = "/usr/bin/python3";
  int threads = 2, warmup = 5, iters = 40;
  bool run_python = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--json")
      json_path = next();
    else if (a == "--threads")
      threads = std::stoi(next());
    else if (a == "--warmup")
      warmup = std::stoi(next());
    else if (a == "--iters")
      iters = std::stoi(next());
    else if (a == "--configs")
      configs = next();
    else if (a == "--python")
      python = next();
    else if (a == "--no-python")
      run_python = false;
    else {
      std::cerr << "usage: vae_bench [--json PATH] [--threads N] [--warmup N] [--iters N] "
                   "[--configs conv-logistic,mlp-bernoulli,mlp-logistic] [--no-python]\n";
      return 2;
    }
  }
  // OpenBLAS single-threaded (the Python twin gets OPENBLAS_NUM_THREADS=1 too).
  if (auto f = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    f(1);
  torch::set_num_threads(threads);

  gm::DataInfo info;
  info.dataset = "fashion-mnist-shaped (random 8-bit levels)";
  info.shape = {1, 28, 28};
  const int64_t batch = 128;
  std::vector<BenchConfig> chosen;
  {
    std::stringstream ss(configs);
    std::string name;
    while (std::getline(ss, name, ',')) {
      bool found = false;
      for (const auto& c : kConfigs)
        if (c.name == name) chosen.push_back(c), found = true;
      if (!found) throw std::runtime_error("--configs: unknown '" + name + "'");
    }
  }

  const std::string dir = B::temp_dir("vae_bench");
  Json manifest, out;
  out["load_before"] = B::load_string();
  out["threads"] = threads;
  out["batch"] = batch;
  std::vector<std::unique_ptr<gm::Model>> models;
  for (const auto& bc : chosen) {
    gm::Config c = gm::make_config(gm::find_model("vae"));
    for (const auto& s : bc.sets) c.set_assignment(s);
    torch::manual_seed(1234);
    models.push_back(gm::find_model("vae").create(c, info));
    Json j = write_config(*models.back(), c, dir + "/" + bc.name, batch);
    j["name"] = bc.name;
    manifest["configs"].push_back(j);
  }
  std::ofstream(dir + "/manifest.json") << manifest.dump(1);

  Json py = Json::object();
  if (run_python) {
    const std::string pyjson = dir + "/python.json";
    py = B::run_python("OPENBLAS_NUM_THREADS=1 " + python + " " + B::source_dir() +
                           "/bench/vae_reference.py --dir " + dir + " --json " + pyjson +
                           " --threads " + std::to_string(threads) + " --warmup " +
                           std::to_string(warmup) + " --iters " + std::to_string(iters),
                       pyjson);
  }
  out["python"] = py;

  std::printf("\nvae_bench: train step, batch %lld, 1x28x28, %d threads, load %s\n",
              (long long)batch, threads, B::load_string().c_str());
  std::printf("%-16s %10s %12s %12s %12s %9s\n", "config", "params", "C++ ms/step", "C++ img/s",
              "Py img/s", "speedup");
  for (size_t i = 0; i < chosen.size(); ++i) {
    const auto& name = chosen[i].name;
    torch::manual_seed(0);
    torch::Tensor x = torch::randint(0, 256, {batch, 1, 28, 28}).to(torch::kFloat32) / 127.5 - 1;
    const auto st = B::time_train_steps(
        *models[i], x, torch::Tensor(), manifest["configs"][i]["lr"].get<double>(),
        manifest["configs"][i]["clip"].get<double>(), warmup, iters);
    const double med = B::median(st.total);
    int64_t params = 0;
    for (auto& p : models[i]->module().parameters()) params += p.numel();
    Json row = {{"params", params},
                {"cpp_median_s", med},
                {"cpp_img_per_s", batch / med},
                {"cpp_phases", st.medians()}};
    double speedup = 0, py_ips = 0;
    if (py.contains(name) && py[name].contains("median_s")) {
      py_ips = batch / py[name]["median_s"].get<double>();
      speedup = (batch / med) / py_ips;
      row["python_img_per_s"] = py_ips;
      row["speedup"] = speedup;
      row["python_validation"] = py[name]["validation"];
      row["python_phases"] = py[name]["phases"];
    }
    out["train"][name] = row;
    std::printf("%-16s %10lld %12.2f %12.0f %12.0f %8.2fx\n", name.c_str(), (long long)params,
                med * 1e3, batch / med, py_ips, speedup);
    B::print_phases(row["cpp_phases"],
                    row.contains("python_phases") ? row["python_phases"] : Json());
  }
  out["load_after"] = B::load_string();
  std::filesystem::create_directories(std::filesystem::path(json_path).parent_path());
  std::ofstream(json_path) << out.dump(1);
  std::printf("wrote %s\n", json_path.c_str());
  std::filesystem::remove_all(dir);
  return 0;
}
