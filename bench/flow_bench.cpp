// Flow train-step throughput (issue #7, performance part): `glow` and `realnvp` with their
// registry defaults on Fashion-MNIST-shaped data (1x28x28, batch 64), side by side with an
// identical PyTorch-Python model (bench/flow_reference.py, Debian's /usr/bin/python3).
//
//   build/flow_bench [--json PATH] [--threads 2] [--warmup 3] [--iters 20] [--no-python]
//                    [--configs glow,realnvp]
//
// The C++ side runs one batch through each flow (ActNorm's data-dependent init), writes weights
// and buffers, and a pre-processed validation batch with its log p and gradient norm; the Python
// twin loads them (load_state_dict strict) and must match to 1e-4 before timing. Both then time
// the trainer's step: zero_grad, uniform dequantisation + pre-processing + log p (bits/dim loss),
// item, backward, clip train.grad_clip, Adam, EMA 0.999.
#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "bench_util.h"
#include "genmodels/flow/flow.h"

using gm::Json;
namespace B = gm::bench;

namespace {

std::shared_ptr<gm::flow::FlowImpl> flow_of(gm::Model& m) {
  for (auto& c : m.module().named_children())
    if (c.key() == "flow") return std::dynamic_pointer_cast<gm::flow::FlowImpl>(c.value());
  throw std::runtime_error("no flow in the model module");
}

Json write_config(gm::Model& model, const gm::Config& c, const std::string& dir, int64_t batch) {
  std::filesystem::create_directories(dir);
  auto f = flow_of(model);
  const auto& o = f->options();
  // ActNorm init on a batch as training would do it.
  torch::manual_seed(3);
  torch::Tensor init = torch::randint(0, 256, {batch, 1, 28, 28}).to(torch::kFloat32) / 127.5 - 1;
  model.loss(init, torch::Tensor());
  model.module().zero_grad();
  Json j = {{"arch", o.arch},
            {"shape", o.shape},
            {"levels", o.levels > 0 ? o.levels : gm::flow::auto_levels(o.shape)},
            {"steps", o.steps},
            {"hidden", o.hidden},
            {"res_blocks", o.res_blocks},
            {"learned_prior", o.learned_prior},
            {"scale", c.get_string("model.coupling_scale")},
            {"scale_bound", o.scale_bound},
            {"dequantize", c.get_string("model.dequantize")},
            {"logit_alpha", c.get_float("model.logit_alpha")},
            {"batch", batch},
            {"lr", c.get_float("train.lr")},
            {"clip", c.get_float("train.grad_clip")}};
  j["params"] = B::write_state(model.module(), dir);
  torch::manual_seed(7);
  torch::Tensor y = torch::randn({8, 1, 28, 28});
  torch::Tensor lp = f->log_prob(y).mean();
  (-lp).backward();
  double sq = 0;
  for (auto& p : model.module().parameters())
    if (p.grad().defined()) sq += p.grad().square().sum().item<double>();
  model.module().zero_grad();
  gm::io::write_npy(dir + "/check_y.npy", y);
  j["check_log_prob"] = lp.item<double>();
  j["check_grad_norm"] = std::sqrt(sq);
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path = B::source_dir() + "/bench/results/flow_bench.json";
  std::string configs = "glow,realnvp", python = "/usr/bin/python3";
  int threads = 2, warmup = 3, iters = 20;
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
      std::cerr << "usage: flow_bench [--json PATH] [--threads N] [--warmup N] [--iters N] "
                   "[--configs glow,realnvp] [--no-python]\n";
      return 2;
    }
  }
  if (auto f = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    f(1);
  torch::set_num_threads(threads);

  gm::DataInfo info;
  info.dataset = "fashion-mnist-shaped (random 8-bit levels)";
  info.shape = {1, 28, 28};
  std::vector<std::string> names;
  {
    std::stringstream ss(configs);
    std::string n;
    while (std::getline(ss, n, ',')) names.push_back(n);
  }
  const std::string dir = B::temp_dir("flow_bench");
  Json manifest, out;
  out["load_before"] = B::load_string();
  out["threads"] = threads;
  std::vector<std::unique_ptr<gm::Model>> models;
  std::vector<int64_t> batches;
  for (const auto& name : names) {
    const auto& entry = gm::find_model(name);
    gm::Config c = gm::make_config(entry);
    torch::manual_seed(1234);
    models.push_back(entry.create(c, info));
    batches.push_back(c.get_int("train.batch_size"));
    Json j = write_config(*models.back(), c, dir + "/" + name, batches.back());
    j["name"] = name;
    manifest["configs"].push_back(j);
  }
  std::ofstream(dir + "/manifest.json") << manifest.dump(1);
  Json py = Json::object();
  if (run_python) {
    const std::string pyjson = dir + "/python.json";
    py = B::run_python("OPENBLAS_NUM_THREADS=1 " + python + " " + B::source_dir() +
                           "/bench/flow_reference.py --dir " + dir + " --json " + pyjson +
                           " --threads " + std::to_string(threads) + " --warmup " +
                           std::to_string(warmup) + " --iters " + std::to_string(iters),
                       pyjson);
  }
  out["python"] = py;
  std::printf("\nflow_bench: train step, 1x28x28, %d threads, load %s\n", threads,
              B::load_string().c_str());
  std::printf("%-10s %6s %10s %12s %12s %12s %9s\n", "model", "batch", "params", "C++ ms/step",
              "C++ img/s", "Py img/s", "speedup");
  for (size_t i = 0; i < names.size(); ++i) {
    const auto& name = names[i];
    const int64_t batch = batches[i];
    torch::manual_seed(0);
    torch::Tensor x = torch::randint(0, 256, {batch, 1, 28, 28}).to(torch::kFloat32) / 127.5 - 1;
    const Json& cj = manifest["configs"][i];
    const auto st = B::time_train_steps(*models[i], x, torch::Tensor(), cj["lr"].get<double>(),
                                        cj["clip"].get<double>(), warmup, iters);
    const double med = B::median(st.total);
    int64_t params = 0;
    for (auto& p : models[i]->module().parameters()) params += p.numel();
    Json row = {{"params", params},
                {"batch", batch},
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
    std::printf("%-10s %6lld %10lld %12.2f %12.0f %12.0f %8.2fx\n", name.c_str(), (long long)batch,
                (long long)params, med * 1e3, batch / med, py_ips, speedup);
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
