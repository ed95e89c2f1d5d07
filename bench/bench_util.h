// Small helpers shared by the bench programs: timing, medians, the machine load, the source
// directory, running a Python twin (Debian's /usr/bin/python3) and reading its JSON report, and a
// twin train-step loop that mirrors src/genmodels/train/trainer.cpp (zero_grad, Model::loss,
// item, backward, clip_grad_norm_, Adam, EMA).
#pragma once
#include <dlfcn.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "genmodels/core/json.h"
#include "genmodels/core/runtime.h"
#include "genmodels/io/npy.h"
#include "genmodels/models/registry.h"
#include "genmodels/train/ema.h"

namespace gm::bench {

using Clock = std::chrono::steady_clock;

inline double secs(Clock::time_point a, Clock::time_point b = Clock::now()) {
  return std::chrono::duration<double>(b - a).count();
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// The repository root (this header lives in ROOT/bench).
inline std::string source_dir() {
  return std::filesystem::path(__FILE__).parent_path().parent_path().string();
}

inline std::string load_string() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

/// A fresh temporary directory /tmp/PREFIX.XXXXXX.
inline std::string temp_dir(const std::string& prefix) {
  std::string t = "/tmp/" + prefix + ".XXXXXX";
  std::vector<char> buf(t.begin(), t.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed for " + t);
  return buf.data();
}

/// Writes every parameter and buffer of `m` as DIR/param.NAME.npy (bool buffers as uint8) and
/// returns the names (the Python twin loads them with load_state_dict(strict=True)).
inline std::vector<std::string> write_state(torch::nn::Module& m, const std::string& dir) {
  std::vector<std::string> names;
  auto put = [&](const std::string& name, const torch::Tensor& t) {
    torch::Tensor v = t.detach().cpu();
    if (v.scalar_type() == torch::kBool) v = v.to(torch::kUInt8);
    gm::io::write_npy(dir + "/param." + name + ".npy", v);
    names.push_back(name);
  };
  for (auto& p : m.named_parameters()) put(p.key(), p.value());
  for (auto& b : m.named_buffers()) put(b.key(), b.value());
  return names;
}

/// Runs `cmd` (a Python twin that writes JSON to `json_path`); returns its report, or an empty
/// object when it failed (the status is printed).
inline Json run_python(const std::string& cmd, const std::string& json_path) {
  std::printf("running: %s\n", cmd.c_str());
  std::fflush(stdout);
  const int rc = std::system(cmd.c_str());
  Json j = Json::object();
  std::ifstream f(json_path);
  if (rc == 0 && f) f >> j;
  if (rc != 0) std::printf("Python reference failed or did not validate (status %d)\n", rc);
  return j;
}

/// Seconds per phase of each timed step: forward (zero_grad + loss + item), backward,
/// optimizer (clip + Adam), EMA; `total` per step.
struct StepTimes {
  std::vector<double> total, forward, backward, optimizer, ema;
  Json medians() const {
    return {{"total_s", median(total)},
            {"forward_s", median(forward)},
            {"backward_s", median(backward)},
            {"optimizer_s", median(optimizer)},
            {"ema_s", median(ema)}};
  }
};

/// GM_BENCH_PROFILE=PREFIX: the `extra` steps after the `timed` ones are recorded as a Chrome
/// trace PREFIX.NAME.json (and left out of the timings). Call at(i) at the start of step i.
class StepProfiler {
 public:
  StepProfiler(std::string name, int timed, int extra)
      : prefix_(std::getenv("GM_BENCH_PROFILE") ? std::getenv("GM_BENCH_PROFILE") : ""),
        name_(std::move(name)),
        timed_(timed),
        extra_(extra) {}
  /// Steps to run: the timed ones, plus the profiled ones when GM_BENCH_PROFILE is set.
  int steps() const { return timed_ + (prefix_.empty() ? 0 : extra_); }
  void at(int i) {
    if (!prefix_.empty() && i == timed_)
      recorder_ = std::make_unique<torch::autograd::profiler::RecordProfile>(prefix_ + "." + name_ +
                                                                             ".json");
  }

 private:
  std::string prefix_, name_;
  int timed_, extra_;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> recorder_;
};

/// The trainer's step on a fixed batch, timed per phase over `iters` steps after `warmup`.
inline StepTimes time_train_steps(gm::Model& model, const torch::Tensor& x, const torch::Tensor& y,
                                  double lr, double clip, int warmup, int iters) {
  auto& mod = model.module();
  mod.train();
  torch::optim::Adam opt(mod.parameters(), torch::optim::AdamOptions(lr));
  gm::train::Ema ema(mod, 0.999, true);
  StepTimes st;
  static int profiled = 0;  // traces PREFIX.0.json, PREFIX.1.json, ... in call order
  StepProfiler profiler(std::to_string(profiled++), warmup + iters, 3);
  for (int i = 0; i < profiler.steps(); ++i) {
    profiler.at(i);
    const auto t0 = Clock::now();
    opt.zero_grad();
    torch::Tensor loss = model.loss(x, y);
    (void)loss.item<double>();
    const auto t1 = Clock::now();
    loss.backward();
    const auto t2 = Clock::now();
    if (clip > 0) torch::nn::utils::clip_grad_norm_(mod.parameters(), clip);
    opt.step();
    const auto t3 = Clock::now();
    ema.update(mod, i + 1);
    const auto t4 = Clock::now();
    if (i < warmup || i >= warmup + iters) continue;
    st.total.push_back(secs(t0, t4));
    st.forward.push_back(secs(t0, t1));
    st.backward.push_back(secs(t1, t2));
    st.optimizer.push_back(secs(t2, t3));
    st.ema.push_back(secs(t3, t4));
  }
  return st;
}

/// One line: per-phase milliseconds of the C++ step and (when present) the Python twin's.
inline void print_phases(const Json& cpp, const Json& py) {
  auto ms = [](const Json& j, const char* k) {
    return j.contains(k) ? 1e3 * j[k].get<double>() : 0.0;
  };
  std::printf("    phases ms (fwd / bwd / clip+adam / ema): C++ %.1f / %.1f / %.1f / %.1f",
              ms(cpp, "forward_s"), ms(cpp, "backward_s"), ms(cpp, "optimizer_s"),
              ms(cpp, "ema_s"));
  if (py.is_object() && !py.empty())
    std::printf("   Python %.1f / %.1f / %.1f / %.1f", ms(py, "forward_s"), ms(py, "backward_s"),
                ms(py, "optimizer_s"), ms(py, "ema_s"));
  std::printf("\n");
}

// ---------------------------------------------------------------- twin benches (C++ vs Python)
struct TwinArgs {
  std::string json_path;  ///< default: bench/results/<bench>.json
  std::string configs;    ///< comma list of configurations / models
  std::string python = "/usr/bin/python3";
  int threads = 2, warmup = 3, iters = 20;
  bool run_python = true;
};

/// Parses --json --threads --warmup --iters --configs --python --no-python into `a` (which holds
/// the defaults); an unknown flag throws with the usage line.
inline void parse_twin_args(int argc, char** argv, TwinArgs& a, const std::string& usage) {
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(f + " needs a value; usage: " + usage);
      return argv[++i];
    };
    if (f == "--json")
      a.json_path = next();
    else if (f == "--threads")
      a.threads = std::stoi(next());
    else if (f == "--warmup")
      a.warmup = std::stoi(next());
    else if (f == "--iters")
      a.iters = std::stoi(next());
    else if (f == "--configs")
      a.configs = next();
    else if (f == "--python")
      a.python = next();
    else if (f == "--no-python")
      a.run_python = false;
    else
      throw std::runtime_error("unknown flag " + f + "; usage: " + usage);
  }
  // As the genmodels program runs: LibTorch's threads, OpenBLAS single-threaded (its pool fights
  // OpenMP; the twin gets OPENBLAS_NUM_THREADS=1) and glibc told to keep freed activation
  // buffers (gm::tune_allocator).
  gm::set_threads(a.threads);
}

inline std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

/// Runs bench/SCRIPT on the manifest in `dir` with the standard flags; its report or {}.
inline Json run_twin(const std::string& script, const std::string& dir, const TwinArgs& a) {
  if (!a.run_python) return Json::object();
  const std::string out = dir + "/python.json";
  return run_python("OPENBLAS_NUM_THREADS=1 " + a.python + " " + source_dir() + "/bench/" + script +
                        " --dir " + dir + " --json " + out + " --threads " +
                        std::to_string(a.threads) + " --warmup " + std::to_string(a.warmup) +
                        " --iters " + std::to_string(a.iters),
                    out);
}

struct TwinModel {
  std::string name;
  gm::Model* model;
  int64_t batch;
  double lr, clip;
};

/// Times each model's train step on a fixed random 8-bit 1x28x28 batch, prints one table row
/// per model (with the twin's img/s, the speedup and per-phase times) and fills out["train"].
inline void train_table(const std::vector<TwinModel>& models, const Json& py, const TwinArgs& a,
                        Json& out) {
  std::printf("\ntrain step, 1x28x28, %d threads, load %s\n", a.threads, load_string().c_str());
  std::printf("%-16s %6s %10s %12s %12s %12s %9s\n", "config", "batch", "params", "C++ ms/step",
              "C++ img/s", "Py img/s", "speedup");
  for (const auto& m : models) {
    torch::manual_seed(0);
    torch::Tensor x = torch::randint(0, 256, {m.batch, 1, 28, 28}).to(torch::kFloat32) / 127.5 - 1;
    const StepTimes st =
        time_train_steps(*m.model, x, torch::Tensor(), m.lr, m.clip, a.warmup, a.iters);
    const double med = median(st.total);
    int64_t params = 0;
    for (auto& p : m.model->module().parameters()) params += p.numel();
    Json row = {{"params", params},
                {"batch", m.batch},
                {"cpp_median_s", med},
                {"cpp_img_per_s", m.batch / med},
                {"cpp_phases", st.medians()}};
    double speedup = 0, py_ips = 0;
    Json py_phases;
    if (py.contains(m.name) && py[m.name].contains("median_s")) {
      py_ips = m.batch / py[m.name]["median_s"].get<double>();
      speedup = (m.batch / med) / py_ips;
      row["python_img_per_s"] = py_ips;
      row["speedup"] = speedup;
      row["python_validation"] = py[m.name]["validation"];
      row["python_phases"] = py_phases = py[m.name]["phases"];
    }
    // A NAME-bf16 row is also compared with the fp32 twin NAME when that ran.
    const std::string suffix = "-bf16";
    std::string fp32_note;
    if (m.name.size() > suffix.size() &&
        m.name.compare(m.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string base = m.name.substr(0, m.name.size() - suffix.size());
      if (py.contains(base) && py[base].contains("median_s")) {
        const double r = (m.batch / med) / (m.batch / py[base]["median_s"].get<double>());
        row["speedup_vs_python_fp32"] = r;
        char buf[64];
        std::snprintf(buf, sizeof buf, "   (%.2fx vs Python fp32)", r);
        fp32_note = buf;
      }
    }
    out["train"][m.name] = row;
    std::printf("%-16s %6lld %10lld %12.2f %12.0f %12.0f %8.2fx%s\n", m.name.c_str(),
                (long long)m.batch, (long long)params, med * 1e3, m.batch / med, py_ips, speedup,
                fp32_note.c_str());
    print_phases(row["cpp_phases"], py_phases);
  }
}

/// Writes the report to a.json_path and removes the temporary directory.
inline void finish(Json& out, const TwinArgs& a, const std::string& dir) {
  out["load_after"] = load_string();
  std::filesystem::create_directories(std::filesystem::path(a.json_path).parent_path());
  std::ofstream(a.json_path) << out.dump(1);
  std::printf("wrote %s\n", a.json_path.c_str());
  std::filesystem::remove_all(dir);
}

struct TwinSpec {
  std::string name;               ///< configuration name (table row, twin's sub-directory)
  std::string model;              ///< registry name
  std::vector<std::string> sets;  ///< "key=value" over the registry defaults
};

/// Writes one configuration's weights and validation data into a directory; returns its
/// manifest entry (the twin reads "batch", "lr", "clip" and its own keys).
using WriteConfig =
    std::function<Json(gm::Model&, const gm::Config&, const std::string& dir, int64_t batch)>;

/// The whole twin bench: builds every spec on 1x28x28 data, writes the manifest, runs the Python
/// twin `script`, times both sides, prints the table and writes the JSON report.
inline void run_twin_bench(const TwinArgs& a, const std::vector<TwinSpec>& specs,
                           const std::string& script, const WriteConfig& write_config) {
  gm::DataInfo info;
  info.dataset = "fashion-mnist-shaped (random 8-bit levels)";
  info.shape = {1, 28, 28};
  const std::string dir = temp_dir("twin_bench");
  Json manifest, out;
  out["load_before"] = load_string();
  out["threads"] = a.threads;
  std::vector<std::unique_ptr<gm::Model>> models;
  std::vector<TwinModel> twins;
  for (const auto& spec : specs) {
    const auto& entry = gm::find_model(spec.model);
    gm::Config c = gm::make_config(entry);
    for (const auto& s : spec.sets) c.set_assignment(s);
    torch::manual_seed(1234);
    models.push_back(entry.create(c, info));
    const int64_t batch = c.get_int("train.batch_size");
    Json j = write_config(*models.back(), c, dir + "/" + spec.name, batch);
    j["name"] = spec.name;
    j["batch"] = batch;
    j["lr"] = c.get_float("train.lr");
    j["clip"] = c.get_float("train.grad_clip");
    manifest["configs"].push_back(j);
    twins.push_back({spec.name, models.back().get(), batch, c.get_float("train.lr"),
                     c.get_float("train.grad_clip")});
  }
  std::ofstream(dir + "/manifest.json") << manifest.dump(1);
  out["python"] = run_twin(script, dir, a);
  train_table(twins, out["python"], a, out);
  finish(out, a, dir);
}

}  // namespace gm::bench
