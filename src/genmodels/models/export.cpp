// export / import / train --init through safetensors (see export.h). A run is loaded the way
// `genmodels sample` loads it (the checkpoint's meta: model name, resolved config, data
// description), and the same three rebuild the model on import, from config.json.
#include "genmodels/models/export.h"

#include <filesystem>
#include <set>
#include <sstream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/models/registry.h"
#include "genmodels/train/checkpoint.h"
#include "genmodels/train/run_dir.h"

namespace gm {
namespace fs = std::filesystem;

namespace {

constexpr int kExportFormat = 1;  // of config.json

std::string shape_text(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  return o.str() + "]";
}

// Every parameter and buffer of `module` by its LibTorch name, parameters first.
std::vector<io::NamedTensor> named_tensors(torch::nn::Module& module) {
  std::vector<io::NamedTensor> out;
  for (const auto& p : module.named_parameters(true)) out.push_back({p.key(), p.value()});
  for (const auto& b : module.named_buffers(true))
    if (b.value().defined()) out.push_back({b.key(), b.value()});
  return out;
}

// Throws unless the checkpoint holds every EMA of `emas` (closed-form fits have none).
void require_emas(const std::string& checkpoint, const std::vector<train::EmaSpec>& emas,
                  const std::string& model) {
  auto archive = train::open_checkpoint(checkpoint);
  torch::serialize::InputArchive ema_ar;
  const bool has_section = archive.try_read("ema", ema_ar);
  for (const auto& spec : emas) {
    torch::serialize::InputArchive one;
    if (!has_section || !ema_ar.try_read(spec.name, one))
      throw Error("--ema: " + checkpoint + " (a '" + model + "' run) has no EMA weights" +
                  (emas.size() > 1 ? " '" + spec.name + "'" : std::string()) +
                  "; export its weights without --ema");
  }
}

// A config.json value as the text Config::set parses; `where` names it in errors.
std::string config_text(const Json& v, const std::string& where) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return v.dump();
  if (v.is_number_float()) return format_float(v.get<double>());
  throw Error(where + " is " + std::string(v.type_name()) +
              ", expected a string, number or boolean");
}

}  // namespace

void load_named_tensors(torch::nn::Module& module, const io::Safetensors& weights,
                        const std::string& origin) {
  const std::vector<io::NamedTensor> targets = named_tensors(module);
  std::set<std::string> wanted;
  for (const auto& t : targets) wanted.insert(t.name);
  int64_t extra = 0, missing = 0;
  std::string first_extra, first_missing;
  for (const auto& t : weights.tensors)
    if (!wanted.count(t.name) && extra++ == 0) first_extra = t.name;
  for (const auto& t : targets)
    if (!weights.find(t.name) && missing++ == 0) first_missing = t.name;
  const std::string hint = " (exported from another model or configuration?)";
  if (missing > 0)
    throw Error(origin + " has no tensor '" + first_missing + "' that the model has" +
                (missing > 1 ? " (nor " + std::to_string(missing - 1) + " more)" : "") + hint);
  if (extra > 0)
    throw Error(origin + ": tensor '" + first_extra + "' is not in the model" +
                (extra > 1 ? " (nor " + std::to_string(extra - 1) + " more)" : "") + hint);
  for (const auto& t : targets) {
    const torch::Tensor& src = *weights.find(t.name);
    if (src.sizes() != t.tensor.sizes())
      throw Error(origin + ": tensor '" + t.name + "' has shape " + shape_text(src.sizes()) +
                  ", the model's is " + shape_text(t.tensor.sizes()) + hint);
    const bool both_float = src.is_floating_point() && t.tensor.is_floating_point();
    if (src.scalar_type() != t.tensor.scalar_type() && !both_float)
      throw Error(origin + ": tensor '" + t.name + "' is " +
                  io::safetensors_dtype(src.scalar_type()) + ", the model's is " +
                  c10::toString(t.tensor.scalar_type()) + hint);
  }
  torch::NoGradGuard no_grad;
  for (const auto& t : targets) t.tensor.copy_(weights.find(t.name)->to(t.tensor.dtype()));
}

void init_from_safetensors(torch::nn::Module& module, const std::string& file) {
  load_named_tensors(module, io::read_safetensors(file), file);
}

ExportResult run_export(const ExportArgs& a) {
  if (a.format != "safetensors")
    throw Error("--format " + a.format + ": the export format is safetensors");
  const train::RunDir dir = train::RunDir::open(a.run);
  const std::string out = a.out.empty() ? dir.path() + "/export" : a.out;
  check_output_dir(out, "--out");

  // The run as `sample` loads it: model, resolved config and data description from the meta.
  const Json meta = dir.read_meta();
  const ModelEntry& entry = find_model(meta.at("model").get<std::string>());
  Config config =
      make_run_config(entry, meta.at("config_toml").get<std::string>(), dir.checkpoint());
  config.set("device", "cpu", "export");
  const DataInfo info = DataInfo::from_json(meta.at("data"));
  std::unique_ptr<Model> model = entry.create(config, info);
  std::vector<train::EmaSpec> emas;
  if (a.ema) {
    emas = model->ema_targets();
    require_emas(dir.checkpoint(), emas, entry.name);
  }
  train::load_checkpoint_weights(dir.checkpoint(), model->module(), emas);

  ExportResult r;
  make_dirs(out);
  r.weights = out + "/" + kExportWeights;
  r.config = out + "/" + kExportConfig;
  const std::vector<io::NamedTensor> tensors = named_tensors(model->module());
  for (const auto& t : tensors) r.bytes += t.tensor.numel() * t.tensor.element_size();
  r.tensors = static_cast<int64_t>(tensors.size());
  io::write_safetensors(r.weights, tensors,
                        {{"format", "pt"},  // what PyTorch-side loaders expect
                         {"genmodels.model", entry.name},
                         {"genmodels.weights", a.ema ? "ema" : "raw"}});
  const Json cfg = {
      {"format", "genmodels-export"}, {"version", kExportFormat},  {"model", entry.name},
      {"family", entry.family},       {"weights", kExportWeights}, {"ema", a.ema},
      {"config", config.to_json()},   {"data", info.to_json()},    {"source", dir.checkpoint()}};
  write_file_atomic(r.config, cfg.dump(2) + "\n");
  return r;
}

std::string run_import(const ImportArgs& a) {
  if (a.out.empty()) throw Error("import: give --out RUN (the run directory to write)");
  check_output_dir(a.out, "--out");
  const train::RunDir run(a.out);
  if (run.has_checkpoint()) throw Error(a.out + " already holds a run; choose another --out");
  if (fs::is_directory(a.file))
    throw Error("import: " + a.file + " is a directory; give FILE.safetensors (from `genmodels " +
                "export`, e.g. RUN/export/model.safetensors)");
  const std::string cfg_path =
      !a.config_json.empty()
          ? a.config_json
          : (fs::path(a.file).parent_path() / kExportConfig).lexically_normal().string();
  if (a.config_json.empty() && !fs::exists(cfg_path))
    throw Error("import: no " + cfg_path + " beside " + a.file +
                " (the config.json `genmodels export` writes); give --config-json FILE");
  const io::Safetensors weights = io::read_safetensors(a.file);

  // config.json: {"model", "config": {key: value}, "data": {dataset, shape, class_names}}
  const Json cfg = Json::parse(read_file(cfg_path), nullptr, /*allow_exceptions=*/false);
  if (!cfg.is_object()) throw Error(cfg_path + " is not a JSON object (not a genmodels config)");
  for (const char* k : {"model", "config", "data"})
    if (!cfg.contains(k))
      throw Error(cfg_path + " has no \"" + k + "\" (write it with `genmodels export`)");
  if (!cfg.at("model").is_string())
    throw Error(cfg_path + ": \"model\" must be a model name such as \"ddpm\"");
  if (!cfg.at("config").is_object())
    throw Error(cfg_path + ": \"config\" must be an object of config keys and values");
  const ModelEntry& entry = find_model(cfg.at("model").get<std::string>());
  Config config = make_config(entry);
  for (const auto& [key, v] : cfg.at("config").items()) {
    const std::string text = config_text(v, cfg_path + ": config key '" + key + "'");
    config.set_exact(key, text, cfg_path);
  }
  config.set("device", "cpu", "import");
  DataInfo info;
  try {
    info = DataInfo::from_json(cfg.at("data"));
  } catch (const Json::exception&) {
    throw Error(cfg_path + ": \"data\" must be {\"dataset\": text, \"shape\": [C, H, W] or [D], " +
                "\"class_names\": [text, ...]}");
  }
  if (info.shape.empty() || info.shape.size() > 3)
    throw Error(cfg_path + ": data shape must be [C, H, W] or [D]");
  for (int64_t d : info.shape)
    if (d < 1 || d > 65536) throw Error(cfg_path + ": data shape entries must be in 1..65536");

  std::unique_ptr<Model> model = entry.create(config, info);
  load_named_tensors(model->module(), weights, a.file);

  const Json meta = {{"model", entry.name},
                     {"config_toml", config.to_toml()},
                     {"data", info.to_json()},
                     {"format", train::kCheckpointFormat},
                     {"imported_from", a.file}};
  run.create();
  write_file_atomic(run.config(), config.to_toml());
  train::save_weights(run.checkpoint(), model->module(), meta);
  return a.out;
}

}  // namespace gm
