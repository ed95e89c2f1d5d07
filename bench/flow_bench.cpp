// Flow train-step throughput (issue #7, performance part): `glow` and `realnvp` with their
// registry defaults on Fashion-MNIST-shaped data (1x28x28, batch 64), side by side with an
// identical PyTorch-Python model (bench/flow_reference.py, Debian's /usr/bin/python3).
//
//   build/flow_bench [--json PATH] [--threads 2] [--warmup 3] [--iters 20] [--no-python]
//                    [--configs glow,realnvp,glow-bf16,realnvp-bf16,glow-cl,glow-cl-bf16,...]
//
// The C++ side runs one batch through each flow (ActNorm's data-dependent init), writes weights
// and buffers, and a pre-processed validation batch with its log p and gradient norm; the Python
// twin loads them (load_state_dict strict) and must match to 1e-4 before timing. Both then time
// the trainer's step: zero_grad, uniform dequantisation + pre-processing + log p (bits/dim loss),
// item, backward, clip train.grad_clip, Adam, EMA 0.999.
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
            {"bf16", o.bf16},
            {"channels_last", o.channels_last}};
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

int main(int argc, char** argv) try {
  B::TwinArgs a;
  a.json_path = B::source_dir() + "/bench/results/flow_bench.json";
  a.configs = "glow,glow-bf16,realnvp,realnvp-bf16";
  B::parse_twin_args(argc, argv, a,
                     "flow_bench [--json PATH] [--threads N] [--warmup N] [--iters N] "
                     "[--configs glow,realnvp,glow-cl,glow-bf16,glow-cl-bf16,...] [--no-python]");
  std::vector<B::TwinSpec> specs;
  // NAME, then optional suffixes -cl (model.memory_format=channels_last: NHWC conditioner
  // convolutions, the twin likewise) and -bf16 (model.precision=bf16: conditioner bodies in bf16),
  // in that order: glow, glow-cl, glow-bf16, glow-cl-bf16.
  for (const auto& name : B::split_list(a.configs)) {
    std::string model = name;
    auto strip = [&](const std::string& suffix) {
      const bool has = model.size() > suffix.size() &&
                       model.compare(model.size() - suffix.size(), suffix.size(), suffix) == 0;
      if (has) model.resize(model.size() - suffix.size());
      return has;
    };
    const bool bf16 = strip("-bf16"), nhwc = strip("-cl");
    // Uniform dequantisation: the twin times the flow itself (glow's default variational
    // dequantiser is a second network the twin does not have).
    std::vector<std::string> sets = {
        "model.dequantization=uniform",
        nhwc ? "model.memory_format=channels_last" : "model.memory_format=nchw"};
    if (bf16) sets.push_back("model.precision=bf16");
    specs.push_back({name, model, sets});
  }
  B::run_twin_bench(a, specs, "flow_reference.py", write_config);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "flow_bench: " << e.what() << "\n";
  return 2;
}
