// The parts of the family contract that are code: data descriptions, the settings every run
// shares, request labels, sample images, and the default (gradient) training of a model on the
// shared Trainer.
#include "genmodels/family/model.h"

#include <algorithm>
#include <cmath>
#include <iostream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/core/runtime.h"
#include "genmodels/io/image.h"
#include "genmodels/io/plot.h"
#include "genmodels/metrics/class_metrics.h"
#include "genmodels/metrics/evaluator.h"
#include "genmodels/train/trainer.h"

namespace gm {

Json DataInfo::to_json() const {
  Json j = {{"dataset", dataset}, {"shape", shape}, {"class_names", class_names}};
  if (channels_a > 0) j["channels_a"] = channels_a;
  if (!dataset_b.empty()) j["dataset_b"] = dataset_b;
  return j;
}

DataInfo DataInfo::from_json(const Json& j) {
  DataInfo d;
  d.dataset = j.at("dataset").get<std::string>();
  d.shape = j.at("shape").get<std::vector<int64_t>>();
  d.class_names = j.at("class_names").get<std::vector<std::string>>();
  d.channels_a = j.value("channels_a", int64_t{0});
  d.dataset_b = j.value("dataset_b", std::string());
  return d;
}

const KeyTable<RunOptions>& run_keys() {
  using O = RunOptions;
  static const KeyTable<O> table = [] {
    KeyTable<O> t;
    t.add("seed", &O::seed, "seed of every random generator");
    t.add("device", &O::device, "cpu, cuda or cuda:N");
    t.add("data.name", &O::data, "dataset (see `genmodels list`)");
    t.add("data.name_b", &O::data_b,
          "unpaired translation (cyclegan): domain B's dataset, data.name being domain A");
    t.add("data.hflip", &O::hflip, "random horizontal flips");
    t.add("data.limit", &O::limit, "use only the first N training examples (0 = all)");
    t.add("data.image_size", &O::image_size, "resize images to this size (0 = native)");
    t.add("data.channels", &O::channels, "1 or 3 to convert images (0 = native)");
    return t;
  }();
  return table;
}

Config make_config(const ModelEntry& entry) {
  Config c(run_keys().keys());
  c.add_keys(train::trainer_keys().keys());
  c.add_keys(entry.config_keys);
  for (const auto& [key, value] : entry.defaults) c.set_default(key, value);
  return c;
}

Config make_run_config(const ModelEntry& entry, const std::string& toml,
                       const std::string& origin) {
  Config c = make_config(entry);
  for (const auto& [key, value] : entry.stored_run_defaults)
    c.set(key, value, origin + " (written before " + key + " existed)");
  c.load_toml_string(toml, origin);
  return c;
}

torch::Tensor request_labels(const SampleRequest& r, int64_t num_classes, bool conditional) {
  if (!conditional) {
    if (r.class_label >= 0)
      throw Error(
          "--class " + std::to_string(r.class_label) +
          ": this model is unconditional (train with model.conditional=true on labelled data)");
    return {};
  }
  if (r.class_label >= num_classes)
    throw Error("--class " + std::to_string(r.class_label) + " is out of range: classes are 0.." +
                std::to_string(num_classes - 1));
  return r.class_label >= 0 ? torch::full({r.n}, r.class_label, torch::kInt64)
                            : torch::arange(r.n, torch::kInt64).remainder(num_classes);
}

SampleResult Model::translate(const torch::Tensor&, const std::string&, uint64_t) {
  throw Error("this model does not translate images (translate is for pix2pix and cyclegan runs)");
}

torch::Tensor Model::text_features(const std::vector<std::string>&) {
  throw Error("this model encodes no text (text features come from clip runs)");
}

torch::Tensor Model::noisy_image_text_logits(const torch::Tensor&, const torch::Tensor&,
                                             const torch::Tensor&) {
  throw Error("this model scores no images against text (CLIP guidance needs a clip run)");
}

std::vector<std::string> Model::caption_images(const torch::Tensor&, const torch::Tensor&,
                                               uint64_t) {
  throw Error("this model makes no captions (captions come from clip runs)");
}

Json Model::test_likelihood(const data::Dataset&, int64_t, int64_t, uint64_t) {
  throw Error(
      "this model has no tractable likelihood (metric nll is for VAEs, flows and the "
      "generative classifiers)");
}

Json Model::zero_shot(const data::Dataset&, int64_t, uint64_t) {
  throw Error("metric zeroshot is for clip runs (contrastive text-image models)");
}

torch::Tensor Model::image_text_similarity(const torch::Tensor&, const std::vector<std::string>&) {
  throw Error("--clip must name a clip run (a contrastive text-image model)");
}

void TrainSession::save_config() const {
  if (!is_primary_process()) return;
  run.create();
  write_file_atomic(run.config(), meta.at("config_toml").get<std::string>());
}

// train.eval_every: the class histogram of 500 samples under the Fashion-MNIST evaluator (its
// normalised entropy, and the accuracy of the requested classes for conditional models), with a
// warning when the entropy collapses (mode collapse; metrics/class_metrics.h). The evaluator is
// loaded (or trained once into the cache) before the training clock starts.
train::MonitorFn Model::class_monitor(const TrainSession& s, int64_t every) {
  if (every <= 0) return {};
  if (s.info.shape != std::vector<int64_t>{1, 28, 28}) {
    std::cerr << "genmodels: train.eval_every: the class-entropy monitor scores 28x28 gray images "
                 "with the Fashion-MNIST evaluator; it is off for "
              << s.info.dataset << "\n";
    return {};
  }
  auto evaluator = std::make_shared<metrics::Evaluator>(
      metrics::Evaluator::load_or_train(metrics::cache_dir(), true));
  const uint64_t seed = s.seed + 1;
  return [this, evaluator, seed](int64_t step) {
    SampleRequest req;
    req.n = 500;
    req.seed = seed;
    const SampleResult r = sample(req);
    const auto h = metrics::class_histogram(evaluator->logits(r.x).argmax(1));
    std::map<std::string, double> out = {{"class_entropy", h.entropy_normalised}};
    if (r.labels.defined()) out["class_accuracy"] = evaluator->accuracy(r.x, r.labels);
    if (h.entropy_normalised < 0.5)
      std::cerr << "\ngenmodels: warning: at step " << step << " the samples' class entropy is "
                << h.entropy_normalised << " of the maximum: the generator may be collapsing "
                << "onto a few classes (mode collapse)\n";
    return out;
  };
}

// Gradient training: the shared Trainer over train_step(), previews and figures from the EMAs.
Json Model::train(TrainSession& s) {
  train::TrainerOptions topts = train::trainer_keys().read(s.config);
  topts.device = s.config.get_string("device");
  topts.stop_at = s.stop_at;
  topts.seed = s.seed;
  topts.validate();
  const train::dist::Env env = train::dist::Env::from_environment();
  if (env.world_size > 1) topts.group = train::dist::Group::join(env, topts.dist_timeout);
  if (s.train.size() < topts.batch_size)
    throw Error("data " + s.info.dataset + " has " + std::to_string(s.train.size()) +
                " examples, fewer than train.batch_size = " + std::to_string(topts.batch_size));
  data::Batcher batcher(s.train, topts.batch_size, s.seed, s.config.get_bool("data.hflip"));
  if (topts.group) batcher.shard(env.rank, env.world_size);
  train::Trainer trainer(*this, topts, batcher, s.run, s.meta);
  if (s.resume) trainer.resume();
  s.save_config();
  int64_t n_params = 0;
  for (const auto& p : module().parameters()) n_params += p.numel();
  if (is_primary_process()) {
    if (topts.group)
      std::cerr << "genmodels: data-parallel over " << env.world_size << " ranks (Gloo, store at "
                << env.master_addr << ":" << env.master_port << "), global batch "
                << topts.batch_size << " = " << batcher.local_batch_size() << " per rank\n";
    std::cerr << "genmodels: " << s.meta.at("model").get<std::string>() << " on " << s.info.dataset
              << " (" << s.train.size() << " examples), " << n_params << " parameters, "
              << s.threads << " threads, " << blas_name().substr(0, 40) << "; run " << s.run.path()
              << (s.resume ? " (resumed at step " + std::to_string(trainer.step()) + ")" : "")
              << "\n";
  }
  train::PreviewFn preview;
  if (generates())
    preview = [&](int64_t step, const std::string& path) {
      SampleRequest req;
      req.n = s.info.num_classes() > 0 ? 6 * s.info.num_classes() : 64;
      req.seed = s.seed;
      SampleResult r = sample(req);
      r.params["model"] = s.meta.at("model").get<std::string>();
      r.params["step"] = std::to_string(step);
      write_sample_image(path, r);
    };
  const train::TrainResult result =
      trainer.run(preview, monitor(s, is_primary_process() ? topts.eval_every : 0));
  if (!result.interrupted && is_primary_process()) {
    // Model-specific figures (VAE reconstructions, interpolations, ...) from the EMA weights.
    const data::Dataset test = s.load_test();
    auto scope = trainer.ema_scope();
    module().eval();
    for (const auto& f : write_figures(s.run, test, s.seed))
      std::cerr << "genmodels: wrote " << f << "\n";
  }
  return Json::object();
}

void write_sample_image(const std::string& path, const SampleResult& s, int64_t nrow) {
  if (s.x.dim() != 4) {
    io::write_png(path, io::scatter_image(s.x), s.params);
    return;
  }
  const int64_t n = s.x.size(0);
  const bool mixed =
      s.labels.defined() && s.labels.min().item<int64_t>() != s.labels.max().item<int64_t>();
  if (nrow <= 0 && s.nrow > 0) nrow = s.nrow;
  if (nrow <= 0)
    nrow = mixed ? std::min<int64_t>(s.labels.max().item<int64_t>() + 1, n)
                 : static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  io::write_png(path, io::make_grid(s.x, nrow), s.params);
}

}  // namespace gm
