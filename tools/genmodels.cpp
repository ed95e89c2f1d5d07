// The genmodels command-line program: parses arguments and calls the library (models/run.h,
// metrics/evaluate.h). Every error is one line on stderr and exit status 2.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/core/runtime.h"
#include "genmodels/data/dataset.h"
#include "genmodels/io/image.h"
#include "genmodels/io/npy.h"
#include "genmodels/metrics/evaluate.h"
#include "genmodels/metrics/toy2d.h"
#include "genmodels/models/run.h"

namespace {

int run(int argc, char** argv) {
  CLI::App app{
      "genmodels: train, sample, evaluate and compare generative models (LibTorch, no Python).\n"
      "Examples:\n"
      "  genmodels train ddpm --data fashion-mnist --minutes 15 --out runs/fmnist\n"
      "  genmodels sample runs/fmnist --sampler ddim --steps 50 --n 100 --out out --npy out/s.npy\n"
      "  genmodels sample runs/fmnist --class 7 --guidance 3 --n 16\n"
      "  genmodels eval out/s.npy --metrics fid,kid,pr,acc,is\n"
      "  genmodels train vae --data fashion-mnist --minutes 10 --out runs/vae\n"
      "  genmodels eval runs/vae --metrics nll --n 1000 --k 1000   (IWAE test likelihood)\n"
      "  genmodels train glow --data fashion-mnist --minutes 15 --out runs/glow\n"
      "  genmodels sample runs/glow --temperature 0.7 --n 64\n"
      "  genmodels list"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "genmodels 0.1.0");

  // train
  gm::TrainArgs ta;
  std::string data, device;
  int64_t steps = 0;
  double minutes = 0;
  uint64_t seed = 0;
  auto* train = app.add_subcommand("train", "train a model into a run directory");
  train->add_option("model", ta.model, "model name (see `genmodels list`)");
  train->add_option("--data", data,
                    "dataset: fashion-mnist, mnist-idx:DIR, folder:DIR, moons, ...");
  train->add_option("--config", ta.config_file, "TOML config file")->check(CLI::ExistingFile);
  train->add_option("--set", ta.sets, "override a config key: --set train.lr=2e-4 (repeatable)");
  auto* o_steps = train->add_option("--steps", steps, "budget in optimizer steps");
  auto* o_minutes = train->add_option("--minutes", minutes, "budget in wall-clock minutes");
  train->add_option("--out", ta.out, "run directory (default runs/MODEL-TIME)");
  train->add_flag("--resume", ta.resume, "continue the run in --out from its checkpoint");
  auto* o_seed = train->add_option("--seed", seed, "random seed");
  auto* o_device = train->add_option("--device", device, "cpu, cuda or cuda:N");
  train->add_option("--threads", ta.threads, "CPU threads (0 = all cores)");
  train->add_option("--stop-at", ta.stop_at, "stop after this step as if interrupted (testing)");

  // sample
  gm::SampleArgs sa;
  auto* sample = app.add_subcommand("sample", "draw samples from a trained run");
  sample->add_option("run", sa.run, "run directory")->required();
  sample->add_option("--sampler", sa.sampler, "ddpm or ddim (default: the run's)");
  sample->add_option("--steps", sa.steps, "sampler steps (respaced)");
  sample->add_option("--eta", sa.eta, "DDIM eta: 0 deterministic, 1 DDPM-like");
  sample->add_option("--spacing", sa.spacing, "timestep spacing: linspace, leading, trailing");
  sample->add_option("--variance", sa.variance, "DDPM variance: beta or beta_tilde");
  sample->add_option("--n", sa.n, "number of samples");
  sample->add_option("--class", sa.class_label, "class to draw (default: every class in turn)");
  sample->add_option("--guidance", sa.guidance, "classifier-free guidance scale (1 = none)");
  sample->add_option("--temperature", sa.temperature, "flows: latent temperature (Glow: 0.7)");
  sample->add_option("--seed", sa.seed, "random seed");
  sample->add_option("--out", sa.out, "output directory for grid.png (default RUN/samples)");
  sample->add_option("--npy", sa.npy, "also write all samples to this .npy (uint8 N x H x W)");
  sample->add_flag("--singles", sa.singles, "also write one PNG per sample");
  sample->add_flag("--raw-weights", sa.raw_weights, "use raw instead of EMA weights");
  sample->add_option("--precision", sa.precision, "fp32 or bf16 (CPU autocast; ~1.4x faster)");
  sample->add_option("--threads", sa.threads, "CPU threads (0 = all cores)");

  // eval
  std::string eval_target, metrics_list = "fid,kid,pr,acc,is", json_out;
  int64_t eval_n = 10000;
  uint64_t eval_seed = 0;
  int eval_threads = 0;
  bool train_evaluator = false;
  gm::SampleArgs eval_sample;
  auto* eval = app.add_subcommand("eval", "score samples: a run directory, a .npy or a PNG folder");
  eval->add_option("target", eval_target, "RUN directory, FILE.npy or DIR of PNGs");
  eval->add_option("--metrics", metrics_list,
                   "comma list of fid,kid,pr,acc,is and, for runs of density models, nll");
  int64_t eval_k = 0;
  eval->add_option("--k", eval_k, "importance samples for nll (0 = the model's default)");
  eval->add_option("--n", eval_n, "samples to draw from a run / use from a file");
  eval->add_option("--seed", eval_seed, "seed for sampling and metric subsets");
  eval->add_option("--json", json_out, "write the result JSON here (default beside the target)");
  eval->add_option("--sampler", eval_sample.sampler, "sampler for a run target");
  eval->add_option("--steps", eval_sample.steps, "sampler steps for a run target");
  eval->add_option("--guidance", eval_sample.guidance, "guidance for a run target");
  eval->add_option("--temperature", eval_sample.temperature, "flow temperature for a run target");
  eval->add_option("--precision", eval_sample.precision, "fp32 or bf16 for a run target");
  eval->add_option("--threads", eval_threads, "CPU threads (0 = all cores)");
  eval->add_flag("--train-evaluator", train_evaluator,
                 "(re)train the Fashion-MNIST evaluator network into the cache");

  auto* list = app.add_subcommand("list", "list models, samplers, schedules and datasets");

  CLI11_PARSE(app, argc, argv);

  if (*train) {
    if (ta.model.empty() && !ta.resume)
      throw gm::Error("train: name a model, e.g. `genmodels train ddpm`");
    if (!data.empty()) ta.data = data;
    if (o_steps->count()) ta.steps = steps;
    if (o_minutes->count()) ta.minutes = minutes;
    if (o_seed->count()) ta.seed = seed;
    if (o_device->count()) ta.device = device;
    const std::string dir = gm::run_train(ta);
    std::cout << dir << "\n";
  } else if (*sample) {
    gm::run_sample(sa);
  } else if (*eval) {
    gm::set_threads(eval_threads);
    gm::warn_if_reference_blas();
    gm::metrics::EvalOptions eo;
    eo.metrics.clear();
    std::stringstream ss(metrics_list);
    for (std::string m; std::getline(ss, m, ',');)
      if (!m.empty()) eo.metrics.push_back(m);
    eo.n = eval_n;
    eo.seed = eval_seed;
    eo.cache_dir = gm::metrics::cache_dir();
    if (train_evaluator) {
      gm::metrics::Evaluator ev = gm::metrics::Evaluator::train({}, true);
      gm::make_dirs(eo.cache_dir);
      ev.save(eo.cache_dir + "/" + gm::metrics::kEvaluatorFile);
      if (eval_target.empty()) return 0;
    }
    if (eval_target.empty()) throw gm::Error("eval: give a RUN directory, FILE.npy or DIR of PNGs");
    torch::Tensor images, labels;
    namespace fs = std::filesystem;
    const bool is_run = fs::is_directory(eval_target) && fs::exists(eval_target + "/checkpoint.pt");
    // nll is the model's own test likelihood; the other metrics score samples.
    const auto nll_it = std::find(eo.metrics.begin(), eo.metrics.end(), "nll");
    const bool want_nll = nll_it != eo.metrics.end();
    if (want_nll) eo.metrics.erase(nll_it);
    gm::Json likelihood;
    if (want_nll) {
      if (!is_run)
        throw gm::Error("eval: metric nll needs a run directory (samples have no likelihood)");
      gm::LikelihoodArgs la;
      la.run = eval_target;
      la.n = eval_n;
      la.k = eval_k;
      la.seed = eval_seed;
      la.threads = eval_threads;
      likelihood = gm::run_likelihood(la);
    }
    // Adds the likelihood (if asked), prints the table and writes the JSON.
    auto emit = [&](gm::Json result, const std::string& default_json) {
      result["target"] = eval_target;
      if (want_nll) {
        result["likelihood"] = likelihood;
        for (const auto& [key, v] : likelihood.items())
          if (v.is_number_float()) result["metrics"][key] = {{"value", v}};
      }
      std::cout << gm::metrics::format_table(result);
      if (json_out.empty()) json_out = default_json;
      gm::write_file_atomic(json_out, result.dump(2) + "\n");
      std::cerr << "genmodels: wrote " << json_out << "\n";
    };
    if (eo.metrics.empty() && want_nll) {
      emit({{"metrics", gm::Json::object()}}, eval_target + "/eval.json");
      return 0;
    }
    if (is_run) {
      eval_sample.run = eval_target;
      eval_sample.n = eval_n;
      eval_sample.seed = eval_seed;
      eval_sample.threads = eval_threads;
      gm::SampleResult s = gm::sample_run(eval_sample);
      if (s.x.dim() == 2) {
        // Vector runs (2-D toys): distances to fresh test draws instead of image metrics.
        gm::data::DataOptions o;
        o.split = "test";
        o.limit = s.x.size(0);
        const torch::Tensor ref = gm::data::load_dataset(s.params.at("data"), o).x;
        gm::Json result = {{"n", s.x.size(0)}};
        result["metrics"]["swd"] = {{"value", gm::metrics::sliced_wasserstein(s.x, ref)}};
        result["metrics"]["mmd_rbf"] = {{"value", gm::metrics::mmd_rbf(s.x, ref)}};
        emit(result, eval_target + "/eval.json");
        return 0;
      }
      images = gm::io::to_uint8(s.x);
      labels = s.labels;
      if (json_out.empty()) json_out = eval_target + "/eval.json";
    } else {
      images = gm::metrics::load_samples(eval_target);
      if (images.size(0) > eval_n) images = images.slice(0, 0, eval_n);
      const std::string labels_path =
          eval_target.size() > 4 && eval_target.substr(eval_target.size() - 4) == ".npy"
              ? eval_target.substr(0, eval_target.size() - 4) + ".labels.npy"
              : "";
      if (!labels_path.empty() && fs::exists(labels_path))
        labels = gm::io::read_npy(labels_path).to(torch::kInt64).slice(0, 0, images.size(0));
      if (json_out.empty())
        json_out = (fs::is_directory(eval_target) ? eval_target + "/eval" : eval_target) + ".json";
    }
    emit(gm::metrics::evaluate_images(images, labels, eo), json_out);
  } else if (*list) {
    std::cout << gm::list_registry();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const gm::Error& e) {
    std::cerr << "genmodels: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "genmodels: internal LibTorch error: " << e.what_without_backtrace() << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "genmodels: error: " << e.what() << "\n";
    return 3;
  }
}
