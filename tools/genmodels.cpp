// The genmodels command-line program: parses arguments into the library's argument structs
// (models/run.h) and prints what the library returns. Every error, CLI11's parse errors
// included, is one line on stderr and exit status 2.
#include <CLI/CLI.hpp>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/core/launch.h"
#include "genmodels/core/progress.h"
#include "genmodels/core/runtime.h"
#include "genmodels/metrics/evaluate.h"
#include "genmodels/models/export.h"
#include "genmodels/models/report.h"
#include "genmodels/models/run.h"
#include "genmodels/models/serve.h"
#include "genmodels/nn/precision.h"
#include "genmodels/sampling/samplers.h"
#include "genmodels/train/run_dir.h"

namespace {

// The sample-time flags of `sample` and `eval`: each is another name for a config key
// (gm::sample_flags()); given values land in `sets` as "key=value".
void add_sample_flags(CLI::App* cmd, std::vector<std::string>& sets) {
  std::string samplers;
  for (const auto& row : gm::sampling::sampler_table())
    samplers += (samplers.empty() ? "" : ", ") + row.name;
  for (const auto& f : gm::sample_flags()) {
    std::string help = f.help + " [" + f.key + "]";
    if (f.key == "sample.sampler") help += " {" + samplers + "}";
    auto add_choices = [&help](const std::vector<std::string>& choices) {
      std::string c;
      for (const auto& v : choices) c += (c.empty() ? "" : ", ") + v;
      help += " {" + c + "}";
    };
    for (const auto& k : gm::sampling::sampler_keys().keys())
      if (k.name == f.key && !k.choices.empty() && f.key != "sample.sampler")
        add_choices(k.choices);
    if (f.key == "model.precision") add_choices(gm::nn::precision_choices());
    const std::string key = f.key;
    cmd->add_option_function<std::string>(
        f.flag,
        [&sets, key, flag = f.flag](const std::string& v) {
          // sample.steps = 0 in a config means "the sampler's default"; as a flag it is a mistake.
          if (key == "sample.steps" && std::atoll(v.c_str()) < 1)
            throw gm::Error(flag + " must be >= 1, got '" + v +
                            "' (omit it for the sampler's default)");
          sets.push_back(key + "=" + v);
        },
        help);
  }
  // Appended, not assigned: a plain vector option would replace what the flags above pushed.
  cmd->add_option_function<std::vector<std::string>>(
      "--set",
      [&sets](const std::vector<std::string>& v) { sets.insert(sets.end(), v.begin(), v.end()); },
      "override a sample.* key: --set sample.eta=0.5 (repeatable)");
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string m; std::getline(ss, m, ',');)
    if (!m.empty()) out.push_back(m);
  return out;
}

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
      "  genmodels train clip --data fashion-mnist --minutes 15 --out runs/clip\n"
      "  genmodels eval runs/clip --metrics zeroshot   (zero-shot accuracy, recall@1/5)\n"
      "  genmodels eval runs/gan --metrics fid,clip_score --clip runs/clip\n"
      "  genmodels train pix2pix --data fmnist-edges --minutes 15 --out runs/edges\n"
      "  genmodels translate runs/edges --input fmnist-edges --n 1000 --out out/edges\n"
      "  genmodels train cyclegan --data fashion-mnist:7 --data-b fashion-mnist:9 --minutes 30\n"
      "  genmodels report runs/fmnist   (runs/fmnist/report.html: curves, previews, eval)\n"
      "  genmodels export runs/fmnist --format safetensors --ema   (weights for PyTorch)\n"
      "  genmodels info out/000003.png; genmodels sample --from out/000003.png\n"
      "  genmodels serve runs/fmnist runs/gan --port 8080   (JSON API and a web page)\n"
      "  genmodels config ddpm > run.toml   (every key, its default and what it does)\n"
      "  genmodels list"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("genmodels ") + gm::version());
  app.option_defaults()->always_capture_default();

  // train
  gm::TrainArgs ta;
  std::string data, device;
  int64_t steps = 0;
  double minutes = 0;
  uint64_t seed = 0;
  auto* train = app.add_subcommand("train", "train a model into a run directory");
  train->add_option("model", ta.model, "model name (see `genmodels list`)");
  train->add_option("--data", data,
                    "dataset: fashion-mnist, fashion-mnist:7, mnist-idx:DIR, folder:DIR, "
                    "fmnist-edges, paired:DIR, moons, ... [data.name]");
  std::string data_b;
  train->add_option("--data-b", data_b,
                    "domain B of unpaired translation (cyclegan), --data being A [data.name_b]");
  train->add_option("--config", ta.config_file, "TOML config file (see `genmodels config MODEL`)")
      ->check(CLI::ExistingFile);
  train->add_option("--set", ta.sets, "override a config key: --set train.lr=2e-4 (repeatable)");
  auto* o_steps = train->add_option("--steps", steps, "budget in optimizer steps [train.steps]");
  auto* o_minutes =
      train->add_option("--minutes", minutes, "budget in wall-clock minutes [train.minutes]");
  train->add_option("--out", ta.out, "run directory (default runs/MODEL-TIME)");
  train->add_flag("--resume", ta.resume,
                  "continue the run in --out from its checkpoint (same budget: bit-identical)");
  auto* o_seed = train->add_option("--seed", seed, "random seed [seed]");
  auto* o_device = train->add_option("--device", device, "cpu, cuda or cuda:N [device]");
  train->add_option("--threads", ta.threads,
                    "CPU threads per process (0 = all cores, shared among local ranks)");
  int nproc = 1;
  train->add_option("--nproc", nproc,
                    "data-parallel training on N local processes (Gloo; like torchrun "
                    "--nproc-per-node N): train.batch_size is the global batch");
  train
      ->add_option("--init", ta.init,
                   "start from the weights of FILE.safetensors (`genmodels export`; names and "
                   "shapes must match the model)")
      ->check(CLI::ExistingFile);
  train->add_option("--stop-at", ta.stop_at, "stop after this step as if interrupted")
      ->group("");  // testing only

  // sample
  gm::SampleArgs sa;
  auto* sample = app.add_subcommand("sample", "draw samples from a trained run");
  sample->add_option("run", sa.run, "run directory (or a checkpoint file in one)");
  std::string sample_from;
  sample->add_option("--from", sample_from,
                     "regenerate IMG.png from the command in its `parameters` chunk, byte for "
                     "byte, into --out (default: IMG's folder/regenerated/)");
  sample->add_option("--regen-file", sa.regen_file)->group("");  // set by --from
  sample->add_option("--regen-index", sa.regen_index)->group("");
  add_sample_flags(sample, sa.sets);
  sample->add_option("--n", sa.n, "number of samples");
  sample->add_option("--class", sa.class_label, "class to draw (-1: every class in turn)");
  sample->add_option("--prompt", sa.prompt,
                     "text-conditional runs (ddpm with model.text_encoder): the text to draw "
                     "(default: each class's prompt in turn); --guidance sets its weight");
  sample->add_option("--clip", sa.clip,
                     "a clip run whose gradient steers any diffusion or score run toward --prompt "
                     "(CLIP guidance; best with a clip trained with model.noised_share > 0)");
  sample->add_option("--clip-guidance", sa.clip_guidance, "scale of the CLIP guidance gradient");
  sample->add_option("--seed", sa.seed, "random seed");
  std::string sample_checkpoint;
  sample->add_option("--checkpoint", sample_checkpoint,
                     "sample a kept checkpoint (train.keep_checkpoints): step_NNNNNNN or a step");
  sample->add_option("--out", sa.out, "output directory for grid.png (default RUN/samples)");
  sample->add_option("--npy", sa.npy, "also write all samples to this .npy (uint8 N x H x W)");
  sample->add_flag("--singles", sa.singles, "also write one PNG per sample");
  const char* keep_batches_help =
      "diffusion and score runs: keep each finished batch (256 samples) in DIR; the same command "
      "with the same DIR, after an interruption, samples only the batches still missing";
  sample->add_option("--keep-batches", sa.keep_batches, keep_batches_help);
  sample->add_flag("--raw-weights", sa.raw_weights, "use raw instead of EMA weights");
  sample->add_option("--threads", sa.threads, "CPU threads (0 = all cores)");

  // eval
  gm::EvalArgs ea;
  std::string metrics_list = "fid,kid,pr,acc,is";
  bool train_evaluator = false;
  auto* eval = app.add_subcommand("eval", "score samples: a run directory, a .npy or a PNG folder");
  eval->add_option("target", ea.target, "RUN directory, FILE.npy or DIR of PNGs");
  eval->add_option("--metrics", metrics_list,
                   "comma list of fid,kid,pr,acc,is and, for runs of density models, nll; "
                   "zeroshot for clip runs; clip_score (with --clip)");
  eval->add_option("--clip", ea.clip, "clip_score: the clip run that scores the images");
  eval->add_option("--prompt", ea.prompt,
                   "clip_score: one prompt for every image (default: each image's class, from "
                   "the samples' labels)");
  eval->add_option("--k", ea.k, "importance samples for nll (0 = the model's default)");
  eval->add_option("--n", ea.n,
                   "samples to draw from a run / use from a file; test images for nll (default: "
                   "the model's, e.g. the VAE's model.iwae_n)");
  eval->add_option("--seed", ea.seed, "seed for sampling and metric subsets");
  eval->add_option("--json", ea.json, "write the result JSON here (default beside the target)");
  eval->add_option("--keep-batches", ea.keep_batches, keep_batches_help);
  add_sample_flags(eval, ea.sets);
  eval->add_option("--threads", ea.threads, "CPU threads (0 = all cores)");
  eval->add_flag("--train-evaluator", train_evaluator,
                 "(re)train the Fashion-MNIST evaluator network into the cache");

  // translate
  gm::TranslateArgs tr;
  auto* translate = app.add_subcommand(
      "translate", "translate images with a pix2pix or cyclegan run (and score them when it can)");
  translate->add_option("run", tr.run, "run directory")->required();
  translate
      ->add_option("--input", tr.input,
                   "DIR of images, FILE.png, FILE.npy, or a dataset (its test split: "
                   "fmnist-edges, fashion-mnist:7, paired:DIR, ...)")
      ->required();
  translate->add_option("--direction", tr.direction, "AtoB or BtoA (default: the run's)");
  translate->add_option("--out", tr.out, "output directory (default RUN/translations)");
  translate->add_option("--npy", tr.npy, "also write the outputs to this .npy (uint8)");
  translate->add_option("--n", tr.n, "translate the first N inputs (0 = all)");
  translate->add_option("--seed", tr.seed, "random seed (pix2pix's test-time dropout)");
  translate->add_flag("--grid-only", tr.grid_only, "write only grid.png, not one PNG per output");
  translate->add_option("--set", tr.sets,
                        "override a sample.* key: --set sample.test_dropout=false (repeatable)");
  translate->add_flag("--raw-weights", tr.raw_weights, "use raw instead of EMA weights");
  translate->add_option("--threads", tr.threads, "CPU threads (0 = all cores)");

  // config, list
  std::string config_model;
  auto* config = app.add_subcommand(
      "config", "print a model's default configuration as commented TOML (for --config)");
  config->add_option("model", config_model, "model name (see `genmodels list`)")->required();
  auto* list = app.add_subcommand("list", "list models, samplers, schedules and datasets");

  // report (models/report.h)
  gm::ReportArgs ra;
  auto* report = app.add_subcommand(
      "report", "write a self-contained HTML report of a run, or a comparison of several runs");
  report->add_option("runs", ra.runs, "run directories")->required();
  report->add_option("--out", ra.out,
                     "HTML file (default RUN/report.html; report.html for several runs)");

  // export, import (models/export.h)
  gm::ExportArgs xa;
  auto* exporter = app.add_subcommand(
      "export", "write a run's weights as safetensors with a config.json (for PyTorch, import)");
  exporter->add_option("run", xa.run, "run directory (or a checkpoint file in one)")->required();
  exporter->add_option("--format", xa.format, "weights format")
      ->check(CLI::IsMember({"safetensors"}));
  exporter->add_flag("--ema", xa.ema, "the EMA weights (what sample uses) instead of the raw ones");
  exporter->add_option("--out", xa.out, "output directory (default RUN/export)");
  gm::ImportArgs ia;
  auto* importer = app.add_subcommand(
      "import", "make a run directory (for sample, eval) from a safetensors file and its config");
  importer->add_option("file", ia.file, "FILE.safetensors (from `genmodels export`)")->required();
  importer->add_option("--config-json", ia.config_json,
                       "the config (default: config.json beside FILE)");
  importer->add_option("--out", ia.out, "the run directory to write")->required();
  std::string info_png;
  auto* info = app.add_subcommand(
      "info", "print the generation parameters a PNG carries (and the command that redraws it)");
  info->add_option("image", info_png, "a PNG written by genmodels")->required();

  // serve
  gm::ServeArgs sv;
  auto* serve = app.add_subcommand(
      "serve", "serve runs over HTTP: a JSON sampling API and a web page (loopback by default)");
  serve->add_option("runs", sv.runs, "run directories (each loaded once)")->required();
  serve->add_option("--port", sv.port, "TCP port (0 = any free port)");
  serve->add_option("--host", sv.host, "listen address (not loopback: reachable by others)");
  serve->add_option("--queue", sv.queue, "requests that may wait behind the running one");
  serve->add_option("--max-n", sv.max_n, "largest n a request may ask for");
  serve->add_option("--threads", sv.threads, "CPU threads for sampling (0 = all cores)");
  serve->add_flag("--quiet", sv.quiet, "no line per finished request on stderr");

  // --quiet on every command: no progress bars (errors and results still print).
  bool quiet = false;
  for (auto* sub : app.get_subcommands({}))
    if (!sub->get_option_no_throw("--quiet"))
      sub->add_flag("--quiet,-q", quiet, "no progress bars");

  if (argc > 1 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (const auto* sub : app.get_subcommands({})) {
      known = known || sub->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known)
      throw gm::Error("unknown command '" + std::string(argv[1]) + "'; commands: " + names);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string msg = e.what();
    for (char& c : msg)
      if (c == '\n') c = ' ';
    std::cerr << "genmodels: error: " << msg << " (see `genmodels --help`)\n";
    return 2;
  }

  if (quiet) {
    gm::Progress::set_quiet(true);
    sa.quiet = true;
  }
  if (*train) {
    if (ta.model.empty() && !ta.resume)
      throw gm::Error("train: name a model, e.g. `genmodels train ddpm`");
    if (!data.empty()) ta.data = data;
    if (!data_b.empty()) ta.data_b = data_b;
    if (o_steps->count()) ta.steps = steps;
    if (o_minutes->count()) ta.minutes = minutes;
    if (o_seed->count()) ta.seed = seed;
    if (o_device->count()) ta.device = device;
    if (nproc < 1) throw gm::Error("--nproc must be >= 1, got " + std::to_string(nproc));
    if (nproc > 1) {
      if (std::getenv("RANK"))
        throw gm::Error("--nproc " + std::to_string(nproc) +
                        " inside a launched rank (RANK is set): a launcher such as torchrun "
                        "starts the ranks, so drop --nproc");
      gm::check_data_parallel(ta);
      std::vector<std::string> args;
      for (int i = 0; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--nproc") {
          ++i;
          continue;
        }
        if (a.rfind("--nproc=", 0) == 0) continue;
        args.push_back(a);
      }
      gm::LaunchOptions lo;
      lo.nproc = nproc;
      return gm::launch_local(args, lo);
    }
    const std::string run_dir = gm::run_train(ta);
    if (gm::is_primary_process()) std::cout << run_dir << "\n";
  } else if (*sample) {
    if (!sample_from.empty()) {
      if (!sa.run.empty())
        throw gm::Error("sample --from " + sample_from + " takes its run from the image; drop " +
                        sa.run);
      int64_t index = -1;
      std::vector<std::string> words = gm::regeneration_args(sample_from, &index);
      const std::filesystem::path from(sample_from);
      const std::string out_dir =
          sa.out.empty() ? (from.parent_path() / "regenerated").string() : sa.out;
      gm::check_output_dir(out_dir, "--out");
      gm::make_dirs(out_dir);
      std::vector<std::string> args = {argv[0], "sample"};
      args.insert(args.end(), words.begin(), words.end());
      for (const std::string& a :
           {std::string("--regen-file"), out_dir + "/" + from.filename().string(),
            std::string("--regen-index"), std::to_string(index)})
        args.push_back(a);
      if (sa.threads) args.insert(args.end(), {"--threads", std::to_string(sa.threads)});
      if (quiet) args.push_back("--quiet");
      std::vector<char*> argv2;
      for (auto& a : args) argv2.push_back(a.data());
      return run(static_cast<int>(argv2.size()), argv2.data());
    }
    if (sa.run.empty()) throw gm::Error("sample: give a RUN directory (or --from IMG.png)");
    if (!sample_checkpoint.empty())
      sa.run = gm::train::RunDir(sa.run).at_checkpoint(sample_checkpoint).checkpoint();
    gm::run_sample(sa);
  } else if (*eval) {
    if (train_evaluator) {
      gm::train_evaluator();
      if (ea.target.empty()) return 0;
    }
    ea.metrics = split_commas(metrics_list);
    if (eval->count("--n") == 0) ea.nll_n = 0;  // nll: the model's default number of images
    const gm::EvalResult r = gm::run_eval(ea);
    std::cout << gm::metrics::format_table(r.result);
    std::cerr << "genmodels: wrote " << r.json_path << "\n";
  } else if (*translate) {
    const gm::TranslateResult r = gm::run_translate(tr);
    for (const auto& [key, v] : r.metrics.items())
      if (v.is_number()) std::cout << key << "\t" << v.dump() << "\n";
  } else if (*serve) {
    gm::run_serve(sv);
  } else if (*info) {
    std::cout << gm::png_info(info_png);
  } else if (*config) {
    std::cout << gm::default_config(config_model);
  } else if (*exporter) {
    const gm::ExportResult r = gm::run_export(xa);
    std::cerr << "genmodels: wrote " << r.tensors << " tensors (" << r.bytes << " bytes) to "
              << r.weights << " and " << r.config << "\n";
    std::cout << r.weights << "\n";
  } else if (*importer) {
    std::cout << gm::run_import(ia) << "\n";
  } else if (*report) {
    std::cout << gm::run_report(ra) << "\n";
  } else if (*list) {
    std::cout << gm::list_registry();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) a write fails with EFBIG, reported like a full disk,
  // instead of the signal killing the program mid-checkpoint.
  std::signal(SIGXFSZ, SIG_IGN);
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
