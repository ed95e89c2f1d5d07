// The commands behind the CLI (see run.h). Run-directory paths come from train::RunDir only.
#include "genmodels/models/run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/command_line.h"
#include "genmodels/core/error.h"
#include "genmodels/core/progress.h"
#include "genmodels/core/runtime.h"
#include "genmodels/data/dataset.h"
#include "genmodels/data/paired.h"
#include "genmodels/diffusion/schedule.h"
#include "genmodels/io/image.h"
#include "genmodels/io/npy.h"
#include "genmodels/io/plot.h"
#include "genmodels/metrics/evaluate.h"
#include "genmodels/metrics/toy2d.h"
#include "genmodels/models/export.h"
#include "genmodels/models/report.h"
#include "genmodels/models/translate.h"
#include "genmodels/nn/precision.h"
#include "genmodels/sampling/batch_cache.h"
#include "genmodels/sampling/samplers.h"
#include "genmodels/train/checkpoint.h"
#include "genmodels/train/run_dir.h"

namespace gm {
namespace fs = std::filesystem;

namespace {

std::string timestamp() {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
  return buf;
}

Config config_of_run(const Json& meta, const ModelEntry& entry, const std::string& origin) {
  return make_run_config(entry, meta.at("config_toml").get<std::string>(), origin);
}

data::DataOptions data_options(const Config& c, const std::string& split) {
  const RunOptions r = run_keys().read(c);
  data::DataOptions o;
  o.split = split;
  o.limit = split == "train" ? r.limit : 0;
  o.image_size = r.image_size;
  o.channels = r.channels;
  o.seed = static_cast<uint64_t>(r.seed);
  return o;
}

// The run's data for a split: data.name, or with data.name_b the two domains of unpaired
// translation (data/paired.h).
data::Dataset load_run_data(const Config& c, const std::string& split) {
  const std::string a = c.get_string("data.name"), b = c.get_string("data.name_b");
  const data::DataOptions o = data_options(c, split);
  if (b.empty()) return data::load_dataset(a, o);
  if (data::is_paired_spec(a) || data::is_paired_spec(b))
    throw Error("data.name_b: " + (data::is_paired_spec(a) ? a : b) +
                " is a paired dataset; unpaired training takes two plain image datasets "
                "(e.g. --data fashion-mnist:7 --data-b fashion-mnist:9)");
  return data::make_unpaired(data::load_dataset(a, o), data::load_dataset(b, o),
                             o.seed + (split == "test" ? 1 : 0));
}

// "key  value" lines of a fit report, numbers with 4 significant digits.
std::string format_report(const Json& report) {
  std::ostringstream out;
  for (const auto& [key, value] : report.items()) {
    out << "  " << key << std::string(key.size() < 30 ? 30 - key.size() : 1, ' ');
    if (value.is_number_float()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4g", value.get<double>());
      out << buf;
    } else {
      out << (value.is_string() ? value.get<std::string>() : value.dump());
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace

std::string run_train(const TrainArgs& a) {
  if (!a.out.empty()) check_output_dir(a.out, "--out");
  const int threads = set_threads(a.threads);
  warn_if_reference_blas();

  std::string run_dir = a.out;
  Config config;
  const ModelEntry* entry = nullptr;
  if (a.resume) {
    if (run_dir.empty()) throw Error("--resume needs --out RUN (the run directory to continue)");
    const train::RunDir run(run_dir);
    const Json meta = run.read_meta();
    entry = &find_model(meta.at("model").get<std::string>());
    if (!a.model.empty() && a.model != entry->name)
      throw Error("--resume: " + run_dir + " is a '" + entry->name + "' run, not '" + a.model +
                  "'");
    config = config_of_run(meta, *entry, run.checkpoint());
  } else {
    entry = &find_model(a.model);
    config = make_config(*entry);
    if (!a.config_file.empty()) config.load_toml_file(a.config_file);
    if (run_dir.empty()) run_dir = "runs/" + entry->name + "-" + timestamp();
    if (train::RunDir(run_dir).has_checkpoint())
      throw Error(run_dir +
                  " already holds a run; continue it with --resume or choose another --out");
  }
  for (const auto& s : a.sets) config.set_assignment(s);
  if (a.data) config.set("data.name", *a.data, "--data");
  if (a.data_b) config.set("data.name_b", *a.data_b, "--data-b");
  if (a.steps) config.set("train.steps", std::to_string(*a.steps), "--steps");
  if (a.minutes) config.set("train.minutes", std::to_string(*a.minutes), "--minutes");
  if (a.seed) config.set("seed", std::to_string(*a.seed), "--seed");
  if (a.device) config.set("device", *a.device, "--device");
  check_device(config.get_string("device"));

  const uint64_t seed = static_cast<uint64_t>(config.get_int("seed"));
  seed_everything(seed);
  const std::string data_name = config.get_string("data.name");
  const data::Dataset ds = load_run_data(config, "train");
  DataInfo info;
  info.dataset = data_name;
  for (int64_t d = 1; d < ds.x.dim(); ++d) info.shape.push_back(ds.x.size(d));
  info.class_names = ds.class_names;
  info.channels_a = ds.channels_a;
  info.dataset_b = config.get_string("data.name_b");
  std::unique_ptr<Model> model = entry->create(config, info);
  if (!a.init.empty()) {  // train --init FILE.safetensors (models/export.h)
    if (a.resume)
      throw Error("--init " + a.init + " starts a fresh run; --resume continues " + run_dir +
                  " from its checkpoint (give one of them)");
    init_from_safetensors(model->module(), a.init);
  }

  TrainSession session{config,
                       info,
                       ds,
                       [&] { return load_run_data(config, "test"); },
                       train::RunDir(run_dir),
                       {{"model", entry->name},
                        {"config_toml", config.to_toml()},
                        {"data", info.to_json()},
                        {"format", train::kCheckpointFormat}},
                       a.resume,
                       a.stop_at,
                       seed,
                       threads};
  const Json report = model->train(session);
  if (!report.empty() && is_primary_process()) {
    write_file_atomic(session.run.report_json(), report.dump(1) + "\n");
    std::cout << format_report(report);
  }
  if (is_primary_process()) refresh_run_report(run_dir);  // RUN/report.html
  return run_dir;
}

void check_data_parallel(const TrainArgs& a) {
  std::string name = a.model;
  if (a.resume && !a.out.empty() && train::RunDir(a.out).has_checkpoint())
    name = train::RunDir(a.out).read_meta().at("model").get<std::string>();
  if (name.empty()) return;  // run_train names the problem
  const ModelEntry& entry = find_model(name);
  if (entry.family == "classic")
    throw Error(entry.name +
                " is fitted in closed form in one pass; data-parallel training "
                "(--nproc, torchrun) is for the gradient-trained models");
}

const std::vector<FlagKey>& sample_flags() {
  static const std::vector<FlagKey> flags = {
      {"--sampler", "sample.sampler", "diffusion sampler"},
      {"--steps", "sample.steps", "sampler steps (respaced; 0 = the sampler's default)"},
      {"--eta", "sample.eta", "DDIM eta: 0 deterministic, 1 DDPM-like"},
      {"--spacing", "sample.spacing", "timestep spacing"},
      {"--schedule", "sample.schedule", "noise-level grid of the sigma samplers"},
      {"--variance", "sample.variance", "DDPM variance"},
      {"--guidance", "sample.guidance", "classifier-free guidance scale (1 = none)"},
      {"--temperature", "sample.temperature", "flows: latent temperature (Glow: 0.7)"},
      {"--truncation", "sample.truncation", "GANs: truncation trick threshold (0 = off)"},
      {"--precision", "model.precision",
       "network arithmetic (bf16: CPU autocast, ~1.4x faster where the CPU has native bf16, far "
       "slower elsewhere; auto: bf16 there, fp32 elsewhere)"},
  };
  return flags;
}

// A run's model with its (EMA unless `raw`) weights, in eval mode on the CPU. `sets` change
// sample.* keys (and model.precision, model.memory_format: how, not what, the network computes)
// of the stored config before the model is built.
LoadedRun load_run(const std::string& run, bool raw, const std::vector<std::string>& sets) {
  const train::RunDir dir = train::RunDir::open(run);
  const Json meta = dir.read_meta();
  LoadedRun r;
  r.entry = &find_model(meta.at("model").get<std::string>());
  r.config = config_of_run(meta, *r.entry, dir.checkpoint());
  r.config.set("device", "cpu", "sample");
  for (const auto& s : sets) {
    const std::string key = s.substr(0, s.find('='));
    if (key.rfind("sample.", 0) != 0 && key != "model.precision" && key != "model.memory_format")
      throw Error("--set " + s +
                  ": only sample.* keys, model.precision and model.memory_format can change at "
                  "sample time; " +
                  key + " is fixed by the trained run");
    r.config.set_assignment(s);
  }
  r.info = DataInfo::from_json(meta.at("data"));
  r.model = r.entry->create(r.config, r.info);
  std::vector<train::EmaSpec> emas;
  if (!raw) emas = r.model->ema_targets();
  r.checkpoint_step = train::load_checkpoint_weights(dir.checkpoint(), r.model->module(), emas);
  r.model->module().eval();
  return r;
}

std::unique_ptr<Model> load_trained_model(const std::string& run) {
  return load_run(run, /*raw=*/false, {}).model;
}

TranslateResult run_translate(const TranslateArgs& a) {
  if (!a.out.empty()) {  // made first: --npy may go inside it
    check_output_dir(a.out, "--out");
    make_dirs(a.out);
  }
  if (!a.npy.empty()) check_output_file(a.npy, "--npy");
  set_threads(a.threads);
  LoadedRun r = load_run(a.run, a.raw_weights, a.sets);
  if (r.model->default_direction().empty())
    throw Error(a.run + " is a '" + r.entry->name +
                "' run; translate takes pix2pix and cyclegan runs (sample draws from the others)");
  const std::string direction = a.direction.empty() ? r.model->default_direction() : a.direction;
  if (direction != "AtoB" && direction != "BtoA")
    throw Error("--direction must be AtoB or BtoA, got '" + direction + "'");
  TranslateInputs in =
      read_translate_inputs(a.input, r.info, direction, r.model->input_channels(direction));
  if (a.n < 0) throw Error("--n must be >= 0 (0 = all inputs), got " + std::to_string(a.n));
  if (a.n > 0 && in.images.size(0) > a.n) in.images = in.images.slice(0, 0, a.n);
  const auto t0 = std::chrono::steady_clock::now();
  SampleResult res = r.model->translate(in.images, direction, a.seed);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  torch::Tensor cycle;
  try {  // translation models that map both ways report the cycle reconstruction
    cycle = r.model->translate(res.x, direction == "AtoB" ? "BtoA" : "AtoB", a.seed).x;
  } catch (const Error&) {
  }

  const train::RunDir dir = train::RunDir::open(a.run);
  const std::string out = a.out.empty() ? dir.path() + "/translations" : a.out;
  make_dirs(out);
  auto params = res.params;
  params["run"] = a.run;
  params["input"] = in.source;
  const int64_t n = res.x.size(0), shown = std::min<int64_t>(n, 16);
  std::vector<torch::Tensor> cols = {in.images.slice(0, 0, shown), res.x.slice(0, 0, shown)};
  params["columns"] = "input | output";
  if (in.targets.defined()) {
    cols.push_back(in.targets.slice(0, 0, shown));
    params["columns"] += " | target";
  }
  int64_t c = 1;
  for (const auto& t : cols) c = std::max(c, t.size(1));
  for (auto& t : cols) t = data::convert_channels(t, c);
  TranslateResult result;
  result.grid = out + "/grid.png";
  io::write_png(
      result.grid,
      io::make_grid(torch::stack(cols, 1).flatten(0, 1), static_cast<int64_t>(cols.size())),
      params);
  if (!a.grid_only) {
    const torch::Tensor u8 = io::to_uint8(res.x);
    for (int64_t i = 0; i < n; ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "/%06lld.png", static_cast<long long>(i));
      auto p = res.params;
      p["run"] = a.run;
      p["source"] = i < static_cast<int64_t>(in.names.size()) ? in.names[i]
                                                              : in.source + "#" + std::to_string(i);
      io::write_png(out + name, u8[i], p);
    }
  }
  if (!a.npy.empty()) {
    io::write_npy(a.npy, io::to_uint8(res.x).squeeze(-1));
    if (in.labels.defined()) {
      const auto dot = a.npy.rfind(".npy");
      io::write_npy((dot == std::string::npos ? a.npy : a.npy.substr(0, dot)) + ".labels.npy",
                    in.labels.slice(0, 0, n).contiguous());
    }
  }
  result.metrics = translation_metrics(in, res.x, cycle);
  result.metrics["direction"] = direction;
  result.metrics["run"] = a.run;
  result.metrics["input"] = in.source;
  result.metrics["seconds"] = secs;
  write_file_atomic(out + "/translate.json", result.metrics.dump(2) + "\n");
  if (!a.quiet)
    std::cerr << "genmodels: translated " << n << " images " << direction << " in "
              << format_duration(secs) << "; wrote " << result.grid
              << (a.grid_only ? "" : " and " + std::to_string(n) + " PNGs in " + out)
              << (a.npy.empty() ? "" : " and " + a.npy) << "\n";
  return result;
}

Json run_likelihood(const LikelihoodArgs& a) {
  set_threads(a.threads);
  LoadedRun r = load_run(a.run, a.raw_weights, {});
  const data::Dataset test = load_run_data(r.config, "test");
  Json j = r.model->test_likelihood(test, a.n, a.k, a.seed);
  j["model"] = r.entry->name;
  j["data"] = r.info.dataset + " (test split)";
  return j;
}

SampleResult sample_run(const SampleArgs& a) {
  set_threads(a.threads);
  warn_if_reference_blas();
  LoadedRun run = load_run(a.run, a.raw_weights, a.sets);
  return sample_loaded(run, a);
}

SampleResult sample_loaded(LoadedRun& run, const SampleArgs& a,
                           const std::function<void(int64_t, int64_t)>& progress) {
  SampleRequest req;
  req.n = a.n;
  req.class_label = a.class_label;
  req.prompt = a.prompt;
  req.seed = a.seed;
  // CLIP guidance (Nichol et al. 2022, Sec. 2.4): s * grad_{x_t} of the clip run's logit of the
  // prompt, added to the score by the denoiser of any diffusion or score model.
  std::shared_ptr<Model> clip;
  if (!a.clip.empty()) {
    if (a.prompt.empty())
      throw Error("--clip " + a.clip + " guides sampling toward --prompt TEXT; give one");
    if (run.entry->family != "diffusion" && run.entry->family != "score")
      throw Error("--clip: CLIP guidance steers diffusion and score models; " + a.run + " is a '" +
                  run.entry->name + "' run");
    if (!(a.clip_guidance >= 0))
      throw Error("--clip-guidance " + num(a.clip_guidance) + " must be >= 0");
    clip = load_trained_model(a.clip);
    torch::Tensor text;
    try {
      text = clip->text_features({a.prompt});
    } catch (const Error&) {
      throw Error("--clip " + a.clip + " is not a clip run (it encodes no text)");
    }
    const double scale = a.clip_guidance;
    req.gradient_guide = [clip, text, scale](const torch::Tensor& x, const torch::Tensor& sigma) {
      torch::AutoGradMode grad_mode(true);
      const torch::Tensor xi = x.detach().to(torch::kFloat).requires_grad_(true);
      const torch::Tensor logits = clip->noisy_image_text_logits(xi, sigma, text);
      return scale * torch::autograd::grad({logits.sum()}, {xi})[0].to(x.device());
    };
  }
  if (!a.keep_batches.empty()) {
    if (run.entry->family != "diffusion" && run.entry->family != "score")
      throw Error("--keep-batches resumes the long samplers of diffusion and score runs; " + a.run +
                  " is a '" + run.entry->name + "' run, which samples in one go");
    // The batches belong to this command, these weights and this program.
    req.batch_cache = std::make_shared<sampling::BatchCache>(
        a.keep_batches, sample_command(a) + "\ncheckpoint_step " +
                            std::to_string(run.checkpoint_step) + "\nsoftware genmodels " +
                            version());
  }
  std::unique_ptr<Progress> bar;  // made at the first report, which brings the total (ETA)
  if (progress) {
    req.progress = progress;
  } else if (!a.quiet) {
    req.progress = [&](int64_t done, int64_t total) {
      if (!bar) bar = std::make_unique<Progress>(total, 0, "sample", 5.0);
      bar->update(done, "");
    };
  }
  SampleResult res = run.model->sample(req);
  if (bar) {
    auto nfe = res.params.find("nfe");
    bar->finish(nfe == res.params.end() ? "" : "NFE " + nfe->second + " per sample");
  }
  res.params["model"] = run.entry->name;
  res.params["data"] = run.info.dataset;
  res.params["run"] = a.run;
  res.params["ema"] = a.raw_weights ? "false" : "true";
  // What regenerates the batch (`genmodels sample --from IMG.png`, `genmodels info IMG.png`).
  res.params["n"] = std::to_string(a.n);
  res.params["seed"] = std::to_string(a.seed);
  res.params["checkpoint_step"] = std::to_string(run.checkpoint_step);  // of the loaded weights
  if (run.config.has("model.precision"))  // what "auto" meant here, so --from repeats it anywhere
    res.params["precision"] =
        nn::resolved_precision_name(run.config.get_string("model.precision"), "model.precision");
  res.params["parameters"] = sample_command(a);
  res.params["Software"] = std::string("genmodels ") + version();
  if (clip) {
    res.params["clip"] = a.clip;
    res.params["clip_guidance"] = num(a.clip_guidance);
    res.params["prompt"] = a.prompt;
  }
  return res;
}

namespace {

// The text chunks of image i's own PNG (--singles): the batch's, plus its index and class.
std::map<std::string, std::string> single_params(const SampleResult& res, int64_t i) {
  auto params = res.params;
  params["index"] = std::to_string(i);
  if (res.labels.defined()) params["class"] = std::to_string(res.labels[i].item<int64_t>());
  return params;
}

}  // namespace

std::string sample_command(const SampleArgs& a) {
  std::string cmd = "genmodels sample " + shell_quote(a.run) + " --n " + std::to_string(a.n) +
                    " --seed " + std::to_string(a.seed);
  if (a.class_label >= 0) cmd += " --class " + std::to_string(a.class_label);
  if (!a.prompt.empty()) cmd += " --prompt " + shell_quote(a.prompt);
  if (!a.clip.empty())
    cmd += " --clip " + shell_quote(a.clip) + " --clip-guidance " + num(a.clip_guidance);
  if (a.raw_weights) cmd += " --raw-weights";
  const std::string precision_key = "model.precision=";
  for (const auto& s : a.sets) {
    if (s.rfind(precision_key, 0) == 0)  // "auto" as resolved here, so the command repeats it
      cmd += " --set " + precision_key +
             nn::resolved_precision_name(s.substr(precision_key.size()), "model.precision");
    else
      cmd += " --set " + shell_quote(s);
  }
  return cmd;
}

std::string png_info(const std::string& png) {
  const auto text = io::read_png_text(png);
  if (text.empty()) throw Error(png + " carries no generation parameters (no PNG text chunks)");
  std::string out;
  if (auto it = text.find("parameters"); it != text.end())
    out += "parameters: " + it->second + "\n";
  for (const auto& [key, value] : text)
    if (key != "parameters") out += key + ": " + value + "\n";
  return out;
}

std::vector<std::string> regeneration_args(const std::string& png, int64_t* index) {
  const auto text = io::read_png_text(png);
  const auto it = text.find("parameters");
  if (it == text.end())
    throw Error(png + " has no 'parameters' chunk (only images written by `genmodels sample` " +
                "can be regenerated)");
  std::vector<std::string> words = split_command_line(it->second, png);
  if (words.size() < 3 || words[0] != "genmodels" || words[1] != "sample")
    throw Error(png +
                ": its 'parameters' chunk is not a `genmodels sample` command: " + it->second);
  words.erase(words.begin(), words.begin() + 2);
  *index = -1;
  if (auto i = text.find("index"); i != text.end()) {
    try {
      *index = std::stoll(i->second);
    } catch (const std::exception&) {
      throw Error(png + ": its 'index' chunk is not a number: " + i->second);
    }
  }
  // The image came from the checkpoint of its step: the run may have trained on since.
  if (auto s = text.find("checkpoint_step"); s != text.end()) {
    const train::RunDir dir = train::RunDir::open(words[0]);
    const std::string now = std::to_string(train::read_checkpoint_step(dir.checkpoint()));
    if (now != s->second) {
      try {
        words[0] = dir.at_checkpoint(s->second).checkpoint();
      } catch (const Error&) {
        throw Error(png + " was drawn from step " + s->second + " of " + words[0] +
                    ", whose checkpoint is now at step " + now + " and keeps no step " + s->second +
                    " (train.keep_checkpoints keeps them)");
      }
    }
  }
  return words;
}

std::string run_sample(const SampleArgs& a) {
  if (!a.regen_file.empty()) {  // sample --from: one image, written as the original was
    check_output_file(a.regen_file, "--out");
    const SampleResult res = sample_run(a);
    if (a.regen_index < 0) {
      write_sample_image(a.regen_file, res, -1);
    } else {
      if (res.x.dim() != 4 || a.regen_index >= res.x.size(0))
        throw Error("image index " + std::to_string(a.regen_index) + " is not in the batch of " +
                    std::to_string(a.n));
      io::write_png(a.regen_file, io::to_uint8(res.x)[a.regen_index],
                    single_params(res, a.regen_index));
    }
    if (!a.quiet) std::cerr << "genmodels: regenerated " << a.regen_file << "\n";
    return a.regen_file;
  }
  if (!a.out.empty()) {  // made first: --npy may go inside it
    check_output_dir(a.out, "--out");
    make_dirs(a.out);
  }
  if (!a.npy.empty()) check_output_file(a.npy, "--npy");
  const auto t0 = std::chrono::steady_clock::now();
  SampleResult res = sample_run(a);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const train::RunDir dir = train::RunDir::open(a.run);
  const std::string out = a.out.empty() ? dir.samples() : a.out;
  make_dirs(out);
  const std::string grid = out + "/grid.png";
  write_sample_image(grid, res, -1);
  if (res.x.dim() == 4) {
    if (a.singles) {
      torch::Tensor u8 = io::to_uint8(res.x);
      for (int64_t i = 0; i < u8.size(0); ++i) {
        char name[64];
        std::snprintf(name, sizeof name, "/%06lld.png", static_cast<long long>(i));
        io::write_png(out + name, u8[i], single_params(res, i));
      }
    }
    if (!a.npy.empty()) io::write_npy(a.npy, io::to_uint8(res.x).squeeze(-1));
  } else if (!a.npy.empty()) {
    io::write_npy(a.npy, res.x.to(torch::kFloat32).contiguous());
  }
  if (!a.npy.empty() && res.labels.defined()) {
    std::string labels_path = a.npy;
    const auto dot = labels_path.rfind(".npy");
    labels_path =
        (dot == std::string::npos ? labels_path : labels_path.substr(0, dot)) + ".labels.npy";
    io::write_npy(labels_path, res.labels);
  }
  if (!a.quiet)
    std::cerr << "genmodels: " << a.n << " samples in " << format_duration(secs) << " ("
              << a.n / std::max(secs, 1e-9) << " img/s); wrote " << grid
              << (a.npy.empty() ? "" : " and " + a.npy) << "\n";
  return grid;
}

void train_evaluator() {
  metrics::Evaluator ev = metrics::Evaluator::train({}, true);
  const std::string dir = metrics::cache_dir();
  make_dirs(dir);
  ev.save(dir + "/" + metrics::kEvaluatorFile);
}

EvalResult run_eval(const EvalArgs& a) {
  set_threads(a.threads);
  warn_if_reference_blas();
  if (a.target.empty()) throw Error("eval: give a RUN directory, FILE.npy or DIR of PNGs");
  const bool is_run = train::RunDir::is_run(a.target);
  metrics::EvalOptions eo;
  eo.metrics = a.metrics;
  eo.n = a.n;
  eo.seed = a.seed;
  eo.cache_dir = metrics::cache_dir();
  // nll is the model's own test likelihood; the other metrics score samples.
  const auto nll_it = std::find(eo.metrics.begin(), eo.metrics.end(), "nll");
  const bool want_nll = nll_it != eo.metrics.end();
  if (want_nll) eo.metrics.erase(nll_it);
  // zeroshot is a CLIP run's zero-shot classification and retrieval on the test split.
  const auto zs_it = std::find(eo.metrics.begin(), eo.metrics.end(), "zeroshot");
  const bool want_zeroshot = zs_it != eo.metrics.end();
  if (want_zeroshot) eo.metrics.erase(zs_it);
  if (want_zeroshot && !is_run) throw Error("eval: metric zeroshot needs a clip run directory");
  // clip_score: how well images match their prompts under a CLIP run (--clip).
  const auto cs_it = std::find(eo.metrics.begin(), eo.metrics.end(), "clip_score");
  const bool want_clip_score = cs_it != eo.metrics.end();
  if (want_clip_score) eo.metrics.erase(cs_it);
  if (want_clip_score && a.clip.empty())
    throw Error("eval: metric clip_score needs --clip RUN (a trained clip run that scores)");
  torch::Tensor scored, scored_labels;  // float [-1, 1] images and their classes, for clip_score
  EvalResult out;
  out.json_path = a.json;
  if (!a.json.empty()) check_output_file(a.json, "--json");
  Json& result = out.result;
  if (want_nll && !is_run)
    throw Error("eval: metric nll needs a run directory (samples have no likelihood)");
  if (is_run && out.json_path.empty()) {
    out.json_path = train::RunDir(a.target).eval_json();
    check_output_file(out.json_path, "eval:");
  }

  if (eo.metrics.empty() && !want_clip_score) {
    result = {{"metrics", Json::object()}};
  } else if (is_run) {
    SampleArgs s;
    s.run = a.target;
    s.n = a.n;
    s.seed = a.seed;
    s.threads = a.threads;
    s.sets = a.sets;
    s.keep_batches = a.keep_batches;
    SampleResult drawn = sample_run(s);
    if (drawn.x.dim() == 2) {
      // Vector runs (2-D toys): distances to fresh test draws instead of image metrics.
      data::DataOptions o;
      o.split = "test";
      o.limit = drawn.x.size(0);
      const torch::Tensor ref = data::load_dataset(drawn.params.at("data"), o).x;
      result = {{"n", drawn.x.size(0)}};
      result["metrics"]["swd"] = {{"value", metrics::sliced_wasserstein(drawn.x, ref)}};
      result["metrics"]["mmd_rbf"] = {{"value", metrics::mmd_rbf(drawn.x, ref)}};
    } else {
      result = eo.metrics.empty()
                   ? Json{{"n", drawn.x.size(0)}, {"metrics", Json::object()}}
                   : metrics::evaluate_images(io::to_uint8(drawn.x), drawn.labels, eo);
      scored = drawn.x;
      scored_labels = drawn.labels;
    }
    // How the samples were drawn (sampler, steps, nfe, guidance, ... as in the PNG metadata).
    for (const auto& [key, v] : drawn.params) result["sample"][key] = v;
  } else {
    torch::Tensor images = metrics::load_samples(a.target), labels;
    if (images.size(0) > a.n) images = images.slice(0, 0, a.n);
    const bool npy = a.target.size() > 4 && a.target.substr(a.target.size() - 4) == ".npy";
    const std::string labels_path =
        npy ? a.target.substr(0, a.target.size() - 4) + ".labels.npy" : "";
    if (!labels_path.empty() && fs::exists(labels_path))
      labels = io::read_npy(labels_path).to(torch::kInt64).slice(0, 0, images.size(0));
    if (out.json_path.empty())
      out.json_path = (fs::is_directory(a.target) ? a.target + "/eval" : a.target) + ".json";
    result = eo.metrics.empty() ? Json{{"n", images.size(0)}, {"metrics", Json::object()}}
                                : metrics::evaluate_images(images, labels, eo);
    scored = io::from_uint8(images);
    scored_labels = labels;
  }
  if (want_clip_score) {
    if (!scored.defined())
      throw Error("eval: metric clip_score scores images; " + a.target + " has none");
    LoadedRun clip = load_run(a.clip, /*raw_weights=*/false, {});
    std::vector<std::string> prompts;
    for (int64_t i = 0; i < scored.size(0); ++i) {
      std::string p = a.prompt;
      if (p.empty() && scored_labels.defined())
        p = clip.model->class_prompt(scored_labels[i].item<int64_t>());
      if (p.empty())
        throw Error(
            "eval: clip_score needs a prompt per image: give --prompt TEXT (the samples "
            "have no class labels the clip run can name)");
      prompts.push_back(std::move(p));
    }
    // Hessel et al. 2021 (CLIPScore) without their 2.5 weight: mean of 100 * max(cos, 0).
    const torch::Tensor cos = clip.model->image_text_similarity(scored, prompts);
    result["metrics"]["clip_score"] = {{"value", (cos.clamp_min(0) * 100).mean().item<double>()},
                                       {"std", (cos.clamp_min(0) * 100).std().item<double>()}};
    result["clip"] = {{"run", a.clip}, {"prompt", a.prompt.empty() ? "per class" : a.prompt}};
  }
  if (want_nll) {
    LikelihoodArgs la;
    la.run = a.target;
    la.n = a.nll_n < 0 ? a.n : a.nll_n;
    la.k = a.k;
    la.seed = a.seed;
    la.threads = a.threads;
    const Json likelihood = run_likelihood(la);
    result["likelihood"] = likelihood;
    // An estimate's standard error ("nll_nats" -> "nll_stderr", "bits_per_dim" ->
    // "bits_per_dim_stderr") goes beside its value.
    auto ends_with = [](const std::string& s, const std::string& end) {
      return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
    };
    for (const auto& [key, v] : likelihood.items()) {
      if (!v.is_number_float() || ends_with(key, "_stderr")) continue;
      result["metrics"][key] = {{"value", v}};
      const std::string se =
          (ends_with(key, "_nats") ? key.substr(0, key.size() - 5) : key) + "_stderr";
      if (likelihood.contains(se)) result["metrics"][key]["stderr"] = likelihood[se];
    }
  }
  if (want_zeroshot) {
    LoadedRun r = load_run(a.target, /*raw_weights=*/false, a.sets);
    const data::Dataset test = load_run_data(r.config, "test");
    const Json zs = r.model->zero_shot(test, a.n, a.seed);
    result["zeroshot"] = zs;
    for (const auto& [key, v] : zs.items())
      if (v.is_number_float()) result["metrics"][key] = {{"value", v}};
  }
  result["target"] = a.target;
  write_file_atomic(out.json_path, result.dump(2) + "\n");
  if (is_run) refresh_run_report(a.target);  // RUN/report.html with the new evaluation
  return out;
}

std::string default_config(const std::string& model) {
  const ModelEntry& entry = find_model(model);
  return "# genmodels train " + entry.name + ": " + entry.description +
         "\n# Every key with its default; edit and pass back with --config FILE.\n\n" +
         make_config(entry).to_toml_commented();
}

std::string list_registry() {
  std::ostringstream out;
  out << "models:\n";
  for (const auto& e : model_registry())
    out << "  " << e.name << "  [" << e.family << "]  " << e.description << "\n";
  out << "samplers (sample.sampler, `genmodels sample RUN --sampler NAME`):\n";
  for (const auto& row : sampling::sampler_table()) {
    out << "  " << row.name << "  " << row.doc << "\n    reads:";
    for (const auto& k : row.keys) out << " " << k;
    out << "\n";
  }
  out << "schedules:\n";
  for (const auto& name : diffusion::schedule_names()) out << "  " << name << "\n";
  out << "datasets:\n";
  for (const auto& name : data::dataset_names()) out << "  " << name << "\n";
  return out.str();
}

}  // namespace gm
