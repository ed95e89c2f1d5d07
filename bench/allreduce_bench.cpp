// All-reduce cost on this machine (issue #18): two ranks (threads of this process, each with its
// own Gloo process group over loopback TCP, as two local processes would have) sum float buffers
// of growing size; prints latency and bandwidth per size and writes JSON. The ring all-reduce moves
// 2 (n - 1) / n of the buffer through every link ("bus bandwidth"), which is what a paper estimate
// of n machines scales.
//   allreduce_bench [--json FILE] [--iters N] [--bytes B1,B2,...]
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "bench_util.h"
#include "genmodels/core/launch.h"
#include "genmodels/train/distributed.h"

namespace bench = gm::bench;
using gm::Json;
using gm::train::dist::Env;
using gm::train::dist::Group;

int main(int argc, char** argv) {
  std::string json_path = "bench/results/allreduce_bench.json";
  int iters = 20;
  std::vector<int64_t> sizes = {4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (a == "--iters" && i + 1 < argc) {
      iters = std::atoi(argv[++i]);
    } else if (a == "--bytes" && i + 1 < argc) {
      sizes.clear();
      std::stringstream ss(argv[++i]);
      for (std::string t; std::getline(ss, t, ',');) sizes.push_back(std::stoll(t));
    } else {
      std::fprintf(stderr, "usage: allreduce_bench [--json FILE] [--iters N] [--bytes B1,B2]\n");
      return 2;
    }
  }
  torch::set_num_threads(1);
  const int world = 2;
  const int port = gm::free_local_port();
  std::vector<std::vector<double>> ms(world, std::vector<double>(sizes.size()));
  std::vector<std::thread> ranks;
  for (int r = 0; r < world; ++r)
    ranks.emplace_back([&, r] {
      Env env;
      env.rank = r;
      env.world_size = world;
      env.master_port = port;
      auto g = Group::join(env, 60);
      for (size_t s = 0; s < sizes.size(); ++s) {
        torch::Tensor t = torch::ones({sizes[s] / 4});
        for (int w = 0; w < 3; ++w) g->all_reduce(t);
        std::vector<double> times;
        for (int i = 0; i < iters; ++i) {
          const auto t0 = bench::Clock::now();
          g->all_reduce(t);
          times.push_back(1000 * bench::secs(t0));
        }
        ms[r][s] = bench::median(times);
      }
    });
  for (auto& t : ranks) t.join();

  Json rows = Json::array();
  std::printf("%12s %10s %12s %12s\n", "bytes", "ms", "algbw GB/s", "busbw GB/s");
  for (size_t s = 0; s < sizes.size(); ++s) {
    const double t = std::max(ms[0][s], ms[1][s]) / 1000;
    const double alg = sizes[s] / t / 1e9, bus = alg * 2.0 * (world - 1) / world;
    std::printf("%12lld %10.3f %12.3f %12.3f\n", static_cast<long long>(sizes[s]), 1000 * t, alg,
                bus);
    rows.push_back({{"bytes", sizes[s]}, {"ms", 1000 * t}, {"algbw_gbs", alg}, {"busbw_gbs", bus}});
  }
  Json out = {{"bench", "allreduce"},
              {"world", world},
              {"transport", "Gloo TCP over loopback"},
              {"iters", iters},
              {"load", bench::load_string()},
              {"rows", rows}};
  std::ofstream(json_path) << out.dump(1) << "\n";
  std::fprintf(stderr, "wrote %s\n", json_path.c_str());
  return 0;
}
