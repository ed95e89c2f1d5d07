#include "genmodels/train/checkpoint.h"

#include <filesystem>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/train/ema.h"

namespace gm::train {

void write_archive_atomic(const std::string& path, torch::serialize::OutputArchive& archive) {
  write_file_atomic(path, [&](std::ostream& out) {
    archive.save_to([&out](const void* data, size_t n) -> size_t {
      out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
      return n;  // failures are read from `out` by write_file_atomic
    });
  });
}

torch::serialize::InputArchive open_checkpoint(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw Error("no checkpoint at " + path + " (train first, or point to a run directory)");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error&) {
    throw Error(path + " is not a readable genmodels checkpoint (corrupt or truncated; " +
                "restore a copy or train again)");
  }
  return archive;
}

Json read_checkpoint_meta(const std::string& path) {
  auto archive = open_checkpoint(path);
  c10::IValue meta;
  if (!archive.try_read("meta", meta) || !meta.isString())
    throw Error(path + " has no genmodels metadata (not a genmodels checkpoint)");
  Json j = Json::parse(meta.toStringRef());
  if (j.value("format", 1) != kCheckpointFormat)
    throw Error(path + " was written by an older genmodels (checkpoint format " +
                std::to_string(j.value("format", 1)) + ", this one reads " +
                std::to_string(kCheckpointFormat) + "); train the run again");
  return j;
}

void save_weights(const std::string& path, torch::nn::Module& module, const Json& meta) {
  torch::serialize::OutputArchive archive, model_ar;
  module.save(model_ar);
  archive.write("model", model_ar);
  archive.write("meta", c10::IValue(meta.dump()));
  write_archive_atomic(path, archive);
}

void load_checkpoint_weights(const std::string& path, torch::nn::Module& module,
                             const std::vector<EmaSpec>& emas) {
  auto archive = open_checkpoint(path);
  torch::serialize::InputArchive model_ar;
  if (!archive.try_read("model", model_ar))
    throw Error(path + " has no model weights (not a genmodels checkpoint)");
  try {
    module.load(model_ar);
    torch::serialize::InputArchive ema_ar;
    if (!emas.empty() && archive.try_read("ema", ema_ar)) {
      for (const auto& spec : emas) {
        torch::serialize::InputArchive one;
        if (!ema_ar.try_read(spec.name, one)) continue;
        Ema e(*spec.module, 0.0, false);
        e.load(one);
        e.copy_to(*spec.module);
      }
    }
  } catch (const c10::Error& err) {
    throw Error(path + ": weights do not match the model built from its config (" +
                std::string(err.what_without_backtrace()).substr(0, 160) + ")");
  }
}

}  // namespace gm::train
