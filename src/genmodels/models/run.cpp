#include "genmodels/models/run.h"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/core/progress.h"
#include "genmodels/core/runtime.h"
#include "genmodels/data/dataset.h"
#include "genmodels/diffusion/schedule.h"
#include "genmodels/io/image.h"
#include "genmodels/io/npy.h"
#include "genmodels/sampling/samplers.h"
#include "genmodels/train/trainer.h"

namespace gm {
namespace fs = std::filesystem;

namespace {

std::string timestamp() {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
  return buf;
}

// Renders N x 2 points as a 256 x 256 density image (log counts), for 2-D toy samples.
torch::Tensor scatter_image(const torch::Tensor& points, double extent = 4.0, int64_t size = 256) {
  torch::Tensor p = points.to(torch::kFloat64);
  torch::Tensor ij = ((p + extent) / (2 * extent) * size).floor().to(torch::kInt64);
  torch::Tensor keep = (ij >= 0).all(1) & (ij < size).all(1);
  ij = ij.index({keep});
  torch::Tensor counts = torch::zeros({size * size}, torch::kFloat64);
  // row = size-1-y so that y points up
  torch::Tensor flat = (size - 1 - ij.select(1, 1)) * size + ij.select(1, 0);
  counts.index_add_(0, flat, torch::ones({flat.size(0)}, torch::kFloat64));
  torch::Tensor img = torch::log1p(counts.view({size, size}));
  img = img / std::max(1e-9, img.max().item<double>());
  return (255.0 * (1.0 - img)).round().to(torch::kUInt8);  // dark = dense
}

Config config_of_run(const Json& meta, const ModelEntry& entry, const std::string& origin) {
  Config c = make_config(entry);
  c.load_toml_string(meta.at("config_toml").get<std::string>(), origin);
  return c;
}

std::string checkpoint_of(const std::string& run) {
  if (fs::is_directory(run)) return train::checkpoint_path(run);
  if (fs::exists(run)) return run;
  throw Error("run '" + run + "' does not exist (give a run directory made by `genmodels train`)");
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

// Closed-form models: fit once on the training split, score the test split, save the run.
std::string fit_closed_form(const ModelEntry& entry, Model& model, const Config& config,
                            const data::Dataset& train, const DataInfo& info,
                            const std::string& run_dir, const TrainArgs& a) {
  if (a.resume)
    throw Error("--resume: " + entry.name +
                " is fitted in closed form; there is nothing to resume");
  data::DataOptions dopts;
  dopts.split = "test";
  dopts.image_size = config.get_int("data.image_size");
  dopts.channels = config.get_int("data.channels");
  const uint64_t seed = static_cast<uint64_t>(config.get_int("seed"));
  dopts.seed = seed;
  const data::Dataset test = data::load_dataset(config.get_string("data.name"), dopts);
  const Json report = model.fit(train, test, seed);  // a failed fit leaves no run behind
  std::cerr << "genmodels: fitted " << entry.name << " on " << info.dataset << " (" << train.size()
            << " examples, " << test.size() << " test); run " << run_dir << "\n";
  make_dirs(run_dir);
  write_file_atomic(run_dir + "/config.toml", config.to_toml());
  const Json meta = {{"model", entry.name},
                     {"config_toml", config.to_toml()},
                     {"data", info.to_json()},
                     {"format", 1}};
  train::save_weights(train::checkpoint_path(run_dir), model.module(), meta);
  write_file_atomic(run_dir + "/report.json", report.dump(1) + "\n");
  // A first look at the density: one column per class.
  SampleRequest req;
  req.n = info.num_classes() > 0 ? 6 * info.num_classes() : 2000;
  req.seed = seed;
  SampleResult s = model.sample(req);
  s.params["model"] = entry.name;
  make_dirs(run_dir + "/samples");
  if (info.is_image())
    io::write_png(run_dir + "/samples/fit.png", io::make_grid(s.x, info.num_classes()), s.params);
  else
    io::write_png(run_dir + "/samples/fit.png", scatter_image(s.x), s.params);
  std::cout << format_report(report);
  return run_dir;
}

}  // namespace

std::string run_train(const TrainArgs& a) {
  const int threads = set_threads(a.threads);
  warn_if_reference_blas();

  std::string run_dir = a.out;
  Config config;
  const ModelEntry* entry = nullptr;
  if (a.resume) {
    if (run_dir.empty()) throw Error("--resume needs --out RUN (the run directory to continue)");
    const std::string ckpt = train::checkpoint_path(run_dir);
    const Json meta = train::read_checkpoint_meta(ckpt);
    entry = &find_model(meta.at("model").get<std::string>());
    if (!a.model.empty() && a.model != entry->name)
      throw Error("--resume: " + run_dir + " is a '" + entry->name + "' run, not '" + a.model +
                  "'");
    config = config_of_run(meta, *entry, ckpt);
  } else {
    entry = &find_model(a.model);
    config = make_config(*entry);
    if (!a.config_file.empty()) config.load_toml_file(a.config_file);
    if (run_dir.empty()) run_dir = "runs/" + entry->name + "-" + timestamp();
    if (fs::exists(train::checkpoint_path(run_dir)))
      throw Error(run_dir +
                  " already holds a run; continue it with --resume or choose another --out");
  }
  for (const auto& s : a.sets) config.set_assignment(s);
  if (a.data) config.set("data.name", *a.data, "--data");
  if (a.steps) config.set("train.steps", std::to_string(*a.steps), "--steps");
  if (a.minutes) config.set("train.minutes", std::to_string(*a.minutes), "--minutes");
  if (a.seed) config.set("seed", std::to_string(*a.seed), "--seed");
  if (a.device) config.set("device", *a.device, "--device");
  check_device(config.get_string("device"));

  const uint64_t seed = static_cast<uint64_t>(config.get_int("seed"));
  seed_everything(seed);

  data::DataOptions dopts;
  dopts.split = "train";
  dopts.limit = config.get_int("data.limit");
  dopts.image_size = config.get_int("data.image_size");
  dopts.channels = config.get_int("data.channels");
  dopts.seed = seed;
  const data::Dataset ds = data::load_dataset(config.get_string("data.name"), dopts);
  DataInfo info;
  info.dataset = config.get_string("data.name");
  for (int64_t d = 1; d < ds.x.dim(); ++d) info.shape.push_back(ds.x.size(d));
  info.class_names = ds.class_names;
  std::unique_ptr<Model> model = entry->create(config, info);
  if (model->closed_form()) return fit_closed_form(*entry, *model, config, ds, info, run_dir, a);
  train::TrainerOptions topts = train::trainer_options_from(config);
  topts.device = config.get_string("device");
  topts.stop_at = a.stop_at;
  if (ds.size() < topts.batch_size)
    throw Error("data " + info.dataset + " has " + std::to_string(ds.size()) +
                " examples, fewer than train.batch_size = " + std::to_string(topts.batch_size));

  int64_t n_params = 0;
  for (const auto& p : model->module().parameters()) n_params += p.numel();

  make_dirs(run_dir);
  write_file_atomic(run_dir + "/config.toml", config.to_toml());
  const Json meta = {{"model", entry->name},
                     {"config_toml", config.to_toml()},
                     {"data", info.to_json()},
                     {"format", 1}};
  data::Batcher batcher(ds, topts.batch_size, seed, config.get_bool("data.hflip"));
  train::Trainer trainer(model->module(), topts, batcher, run_dir, meta);
  if (a.resume) trainer.resume(train::checkpoint_path(run_dir));

  std::cerr << "genmodels: " << entry->name << " on " << info.dataset << " (" << ds.size()
            << " examples), " << n_params << " parameters, " << threads << " threads, "
            << blas_name().substr(0, 40) << "; run " << run_dir
            << (a.resume ? " (resumed at step " + std::to_string(trainer.step()) + ")" : "")
            << "\n";

  train::TrainHooks hooks;
  hooks.loss = [&](const torch::Tensor& x, const torch::Tensor& y) { return model->loss(x, y); };
  hooks.preview = [&](int64_t step, const std::string& path) {
    SampleRequest req;
    req.n = info.num_classes() > 0 ? 6 * info.num_classes() : 64;
    req.seed = seed;
    SampleResult s = model->sample(req);
    std::map<std::string, std::string> text = s.params;
    text["model"] = entry->name;
    text["step"] = std::to_string(step);
    if (info.is_image())
      io::write_png(path, io::make_grid(s.x, info.num_classes() > 0 ? info.num_classes() : 8),
                    text);
    else
      io::write_png(path, scatter_image(s.x), text);
  };
  const train::TrainResult result = trainer.run(hooks);
  if (!result.interrupted) {
    // Model-specific figures (VAE reconstructions, interpolations, ...) from the EMA weights.
    data::DataOptions test_opts = dopts;
    test_opts.split = "test";
    test_opts.limit = 0;
    const data::Dataset test = data::load_dataset(config.get_string("data.name"), test_opts);
    train::EmaScope scope(model->module(), trainer.ema());
    model->module().eval();
    for (const auto& f : model->write_figures(run_dir + "/samples", test, seed))
      std::cerr << "genmodels: wrote " << f << "\n";
  }
  return run_dir;
}

namespace {

struct LoadedRun {
  const ModelEntry* entry;
  Config config;
  DataInfo info;
  std::unique_ptr<Model> model;
};

// A run's model with its (EMA unless `raw`) weights, in eval mode on the CPU.
LoadedRun load_run(const std::string& run, bool raw, const std::string& precision) {
  const std::string ckpt = checkpoint_of(run);
  const Json meta = train::read_checkpoint_meta(ckpt);
  LoadedRun r;
  r.entry = &find_model(meta.at("model").get<std::string>());
  r.config = config_of_run(meta, *r.entry, ckpt);
  r.config.set("device", "cpu", "sample");
  if (!precision.empty() && r.config.has("model.precision"))
    r.config.set("model.precision", precision, "--precision");
  r.info = DataInfo::from_json(meta.at("data"));
  r.model = r.entry->create(r.config, r.info);
  train::load_checkpoint_weights(ckpt, r.model->module(), !raw);
  r.model->module().eval();
  return r;
}

}  // namespace

Json run_likelihood(const LikelihoodArgs& a) {
  set_threads(a.threads);
  LoadedRun r = load_run(a.run, a.raw_weights, "");
  data::DataOptions o;
  o.split = "test";
  o.image_size = r.config.get_int("data.image_size");
  o.channels = r.config.get_int("data.channels");
  o.seed = static_cast<uint64_t>(r.config.get_int("seed"));
  const data::Dataset test = data::load_dataset(r.config.get_string("data.name"), o);
  Json j = r.model->test_likelihood(test, a.n, a.k, a.seed);
  j["model"] = r.entry->name;
  j["data"] = r.info.dataset + " (test split)";
  return j;
}

SampleResult sample_run(const SampleArgs& a) {
  set_threads(a.threads);
  warn_if_reference_blas();
  LoadedRun run = load_run(a.run, a.raw_weights, a.precision);
  const ModelEntry& entry = *run.entry;
  std::unique_ptr<Model>& model = run.model;

  SampleRequest req;
  req.n = a.n;
  req.sampler = a.sampler;
  req.steps = a.steps;
  req.eta = a.eta;
  req.spacing = a.spacing;
  req.variance = a.variance;
  req.class_label = a.class_label;
  req.guidance = a.guidance;
  req.temperature = a.temperature;
  req.seed = a.seed;
  std::unique_ptr<Progress> bar;
  if (!a.quiet) {
    bar = std::make_unique<Progress>(0, 0, "sample", 5.0);
    req.progress = [&](int64_t done, int64_t total) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "step %lld/%lld", static_cast<long long>(done),
                    static_cast<long long>(total));
      bar->update(done, buf);
    };
  }
  SampleResult res = model->sample(req);
  if (bar) bar->finish("");
  res.params["model"] = entry.name;
  res.params["data"] = run.info.dataset;
  res.params["run"] = a.run;
  res.params["ema"] = a.raw_weights ? "false" : "true";
  return res;
}

std::string run_sample(const SampleArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  SampleResult res = sample_run(a);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string out =
      a.out.empty() ? (fs::is_directory(a.run) ? a.run + "/samples" : "samples") : a.out;
  make_dirs(out);
  const std::string grid = out + "/grid.png";
  if (res.x.dim() == 4) {
    int64_t nrow = res.labels.defined() && a.class_label < 0
                       ? std::min<int64_t>(res.labels.max().item<int64_t>() + 1, a.n)
                       : static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(a.n))));
    io::write_png(grid, io::make_grid(res.x, nrow), res.params);
    if (a.singles) {
      torch::Tensor u8 = io::to_uint8(res.x);
      for (int64_t i = 0; i < u8.size(0); ++i) {
        char name[64];
        std::snprintf(name, sizeof name, "/%06lld.png", static_cast<long long>(i));
        auto params = res.params;
        params["index"] = std::to_string(i);
        if (res.labels.defined()) params["class"] = std::to_string(res.labels[i].item<int64_t>());
        io::write_png(out + name, u8[i], params);
      }
    }
    if (!a.npy.empty()) io::write_npy(a.npy, io::to_uint8(res.x).squeeze(-1));
  } else {
    io::write_png(grid, scatter_image(res.x), res.params);
    if (!a.npy.empty()) io::write_npy(a.npy, res.x.to(torch::kFloat32).contiguous());
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

std::string list_registry() {
  std::ostringstream out;
  out << "models:\n";
  for (const auto& e : model_registry())
    out << "  " << e.name << "  [" << e.family << "]  " << e.description << "\n";
  out << "samplers:\n";
  for (const auto& [name, doc] : sampling::sampler_names())
    out << "  " << name << "  " << doc << "\n";
  out << "schedules:\n";
  for (const auto& name : diffusion::schedule_names()) out << "  " << name << "\n";
  out << "datasets:\n";
  for (const auto& name : data::dataset_names()) out << "  " << name << "\n";
  return out.str();
}

}  // namespace gm
