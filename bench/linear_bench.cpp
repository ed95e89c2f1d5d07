// Fully connected layer forward + backward: torch::linear (single-threaded BLAS, as configured by
// gm::set_threads) against gm::nn::linear (row-split GEMMs on every LibTorch thread), fp32, on
// the VAE's layer shapes.
//
//   build/linear_bench [--threads 2] [--iters 30] [--json PATH]
#include <chrono>
#include <cstdio>
#include <iostream>

#include "bench_util.h"
#include "genmodels/core/runtime.h"
#include "genmodels/nn/linear.h"

namespace B = gm::bench;

namespace {

template <class F>
double median_ms(F&& f, int iters) {
  std::vector<double> t;
  for (int i = 0; i < iters + 3; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= 3) t.push_back(ms);
  }
  return B::median(t);
}

}  // namespace

int main(int argc, char** argv) try {
  int threads = 2, iters = 30;
  std::string json = B::source_dir() + "/bench/results/linear_bench.json";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc)
      threads = std::stoi(argv[++i]);
    else if (a == "--iters" && i + 1 < argc)
      iters = std::stoi(argv[++i]);
    else if (a == "--json" && i + 1 < argc)
      json = argv[++i];
    else
      throw std::runtime_error("usage: linear_bench [--threads N] [--iters N] [--json PATH]");
  }
  gm::set_threads(threads);
  gm::Json out;
  out["threads"] = torch::get_num_threads();
  std::printf("linear forward + backward, fp32, %d threads, load %s\n", torch::get_num_threads(),
              B::load_string().c_str());
  std::printf("%-22s %14s %16s %9s\n", "batch x in -> out", "torch (ms)", "gm::nn (ms)", "speedup");
  const int64_t shapes[][3] = {{128, 3136, 512}, {128, 512, 3136}, {128, 784, 512},
                               {128, 512, 512},  {128, 512, 784},  {128, 512, 64}};
  for (const auto& s : shapes) {
    torch::manual_seed(0);
    torch::Tensor x = torch::randn({s[0], s[1]}, torch::requires_grad());
    torch::Tensor w = torch::randn({s[2], s[1]}, torch::requires_grad());
    torch::Tensor b = torch::randn({s[2]}, torch::requires_grad());
    auto step = [&](bool ours) {
      torch::Tensor y = ours ? gm::nn::linear(x, w, b) : torch::linear(x, w, b);
      y.sum().backward();
      x.mutable_grad() = w.mutable_grad() = b.mutable_grad() = torch::Tensor();
    };
    const double t0 = median_ms([&] { step(false); }, iters);
    const double t1 = median_ms([&] { step(true); }, iters);
    const std::string name =
        std::to_string(s[0]) + "x" + std::to_string(s[1]) + "->" + std::to_string(s[2]);
    std::printf("%-22s %14.2f %16.2f %8.2fx\n", name.c_str(), t0, t1, t0 / t1);
    out["shapes"][name] = {{"torch_ms", t0}, {"gm_ms", t1}, {"speedup", t0 / t1}};
  }
  std::ofstream(json) << out.dump(1);
  std::printf("wrote %s\n", json.c_str());
  return 0;
} catch (const std::exception& e) {
  std::cerr << "linear_bench: " << e.what() << "\n";
  return 2;
}
