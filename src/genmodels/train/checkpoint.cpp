#include "genmodels/train/checkpoint.h"

#include <zlib.h>

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

namespace {

uint32_t le32(const unsigned char* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
uint16_t le16(const unsigned char* p) { return uint16_t(p[0] | (p[1] << 8)); }

// Raw deflate data of `n` bytes inflates to exactly `want` bytes with CRC-32 `crc`.
bool inflates_to(const unsigned char* src, size_t n, size_t want, uint32_t crc) {
  std::string out(want, '\0');
  z_stream z{};
  if (inflateInit2(&z, -15) != Z_OK) return false;
  z.next_in = const_cast<unsigned char*>(src);
  z.avail_in = static_cast<uInt>(n);
  z.next_out = reinterpret_cast<unsigned char*>(out.data());
  z.avail_out = static_cast<uInt>(want);
  const int r = inflate(&z, Z_FINISH);
  const bool ok = r == Z_STREAM_END && z.total_out == want;
  inflateEnd(&z);
  return ok && crc32(0L, reinterpret_cast<const unsigned char*>(out.data()),
                     static_cast<uInt>(want)) == crc;
}

// LibTorch's archive reader trusts the bytes it is given: a flipped byte in a checkpoint's code
// or pickle can crash it (found by fuzz_checkpoint: a segfault in its TorchScript type parser).
// Every record of the zip container carries a CRC-32, so the file is checked record by record
// before LibTorch reads it; returns "" when it is sound.
std::string zip_problem(const std::string& b) {
  const auto* u = reinterpret_cast<const unsigned char*>(b.data());
  const size_t n = b.size();
  if (n < 22) return "too short for a zip archive";
  size_t eocd = std::string::npos;  // end of central directory, within the last 64 KiB + 22
  for (size_t i = n - 22 + 1; i-- > (n > 65557 ? n - 65557 : 0);)
    if (le32(u + i) == 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd == std::string::npos) return "no zip directory (truncated?)";
  const size_t entries = le16(u + eocd + 10);
  size_t p = le32(u + eocd + 16);
  if (le32(u + eocd + 16) == 0xFFFFFFFFu)  // zip64: past 4 GiB, left to LibTorch
    return n >= (size_t(1) << 32) ? "" : "a small file claims a zip64 directory";
  if (entries == 0 || p + le32(u + eocd + 12) > eocd) return "broken zip directory";
  for (size_t e = 0; e < entries; ++e) {
    if (p + 46 > n || le32(u + p) != 0x02014b50) return "broken zip directory";
    const unsigned method = le16(u + p + 10);
    const uint32_t crc = le32(u + p + 16), size = le32(u + p + 20), usize = le32(u + p + 24);
    const size_t name = le16(u + p + 28), extra = le16(u + p + 30), comment = le16(u + p + 32);
    const size_t local = le32(u + p + 42);
    p += 46 + name + extra + comment;
    // LibTorch stores tensors and deflates its TorchScript code; zip64 fields only past 4 GiB.
    if ((method != 0 && method != 8) || (method == 0 && size != usize) ||
        (method == 8 && usize > (64u << 20)))
      return "a zip record is not stored or deflated as LibTorch writes them";
    if (size == 0xFFFFFFFFu || local == 0xFFFFFFFFu) {
      if (n < (size_t(1) << 32)) return "a zip record claims zip64 sizes in a small file";
      continue;
    }
    if (local + 30 > n || le32(u + local) != 0x04034b50) return "broken zip record";
    const size_t data = local + 30 + le16(u + local + 26) + le16(u + local + 28);
    if (data + size > n) return "zip record runs past the end (truncated?)";
    if (le16(u + local + 8) != method)  // (its CRC is in a data descriptor: the directory's counts)
      return "a zip record's local header disagrees with the directory";
    if (method == 8 && !inflates_to(u + data, size, usize, crc))
      return "a compressed zip record fails to inflate to its CRC-32";
    if (method == 0 && crc32(0L, u + data, size) != crc)
      return "a zip record fails its CRC-32 check";
  }
  return "";
}

}  // namespace

torch::serialize::InputArchive open_checkpoint(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw Error("no checkpoint at " + path + " (train first, or point to a run directory)");
  if (std::filesystem::is_directory(path))
    throw Error(path + " is a directory, not a checkpoint file");
  const std::string bytes = read_file(path);  // read once: checked, then parsed from memory
  if (const std::string bad = zip_problem(bytes); !bad.empty())
    throw Error(path + " is not a readable genmodels checkpoint (" + bad +
                "; restore a copy or train again)");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(bytes.data(), bytes.size());
  } catch (const std::exception&) {  // c10::Error, torch::jit::ErrorReport, ...
    throw Error(path + " is not a readable genmodels checkpoint (corrupt or truncated; " +
                "restore a copy or train again)");
  }
  return archive;
}

namespace {
int64_t step_of(torch::serialize::InputArchive& archive) {
  torch::Tensor step;
  if (!archive.try_read("step", step) || step.numel() != 1) return -1;
  return step.item<int64_t>();
}
}  // namespace

int64_t read_checkpoint_step(const std::string& path) {
  auto archive = open_checkpoint(path);
  return step_of(archive);
}

Json read_checkpoint_meta(const std::string& path) {
  auto archive = open_checkpoint(path);
  c10::IValue meta;
  if (!archive.try_read("meta", meta) || !meta.isString())
    throw Error(path + " has no genmodels metadata (not a genmodels checkpoint)");
  Json j = Json::parse(meta.toStringRef(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) throw Error(path + " has corrupt genmodels metadata (not JSON)");
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

int64_t load_checkpoint_weights(const std::string& path, torch::nn::Module& module,
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
  return step_of(archive);
}

}  // namespace gm::train
