// IDX reader. Layout: magic 00 00 <dtype> <ndims>, ndims big-endian uint32 sizes, then data.
// zlib's gzread reads gzipped and raw files alike, so both go through one code path.
#include "genmodels/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "genmodels/core/error.h"

namespace gm::data {
namespace fs = std::filesystem;
namespace {

const char kFashionDir[] = "/usr/share/datasets/fashion-mnist";

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08X", v);
  return buf;
}

std::string missing_message(const std::string& path) {
  std::string msg = "IDX file " + path + " does not exist";
  if (path.rfind(kFashionDir, 0) == 0)
    msg += " (Fashion-MNIST is not installed; install it: apt-get install dataset-fashion-mnist)";
  else
    msg += " (check the path)";
  return msg;
}

struct GzFile {
  gzFile f = nullptr;
  ~GzFile() {
    if (f) gzclose(f);
  }
};

// Reads up to `n` bytes; returns the count read. Throws on a zlib data error.
size_t read_some(gzFile f, char* dst, size_t n, const std::string& path) {
  size_t got = 0;
  while (got < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30));
    const int r = gzread(f, dst + got, chunk);
    if (r < 0) {
      int err = 0;
      const char* what = gzerror(f, &err);
      throw Error("cannot read IDX file " + path + ": " + (what ? what : "zlib error") +
                  " (corrupt gzip; re-download the file)");
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  // A truncated gzip stream reports Z_BUF_ERROR at EOF; that surfaces as a short read.
  return got;
}

std::string file_for(const std::string& dir, const std::string& base) {
  const fs::path raw = fs::path(dir) / base;
  std::error_code ec;
  if (fs::exists(raw, ec)) return raw.string();
  const fs::path gz = fs::path(dir) / (base + ".gz");
  if (fs::exists(gz, ec)) return gz.string();
  std::string msg = "MNIST-format file " + raw.string() + "[.gz] does not exist";
  if (fs::path(dir).lexically_normal().string().rfind(kFashionDir, 0) == 0)
    msg += " (Fashion-MNIST is not installed; install it: apt-get install dataset-fashion-mnist)";
  else
    msg += " (the folder needs train-/t10k-{images-idx3,labels-idx1}-ubyte[.gz])";
  throw Error(msg);
}

}  // namespace

torch::Tensor read_idx(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(missing_message(path));
  if (fs::is_directory(path, ec)) throw Error("IDX file " + path + " is a directory, not a file");
  GzFile gz;
  gz.f = gzopen(path.c_str(), "rb");
  if (!gz.f) throw Error("cannot open IDX file " + path + " (check permissions)");
  gzbuffer(gz.f, 1 << 18);

  unsigned char magic[4] = {0, 0, 0, 0};
  const size_t got_magic = read_some(gz.f, reinterpret_cast<char*>(magic), 4, path);
  const uint32_t magic_value = (uint32_t(magic[0]) << 24) | (uint32_t(magic[1]) << 16) |
                               (uint32_t(magic[2]) << 8) | uint32_t(magic[3]);
  if (got_magic < 4 || magic[0] != 0 || magic[1] != 0 || magic[3] == 0 || magic[3] > 8)
    throw Error("IDX file " + path + " has bad magic " +
                (got_magic < 4 ? std::string("(file shorter than 4 bytes)") : hex32(magic_value)) +
                ", expected 0x00000801 (labels) or 0x00000803 (images); is it an IDX file?");
  if (magic[2] != 0x08)
    throw Error("IDX file " + path + " has unsupported dtype code 0x" + hex32(magic[2]).substr(8) +
                " (magic " + hex32(magic_value) + "); only unsigned byte (0x08) is supported");

  const int ndims = magic[3];
  unsigned char dims_raw[32];
  const size_t got_dims = read_some(gz.f, reinterpret_cast<char*>(dims_raw), 4 * ndims, path);
  if (got_dims < size_t(4 * ndims))
    throw Error("IDX file " + path + " is truncated: expected " + std::to_string(4 + 4 * ndims) +
                " header bytes, got " + std::to_string(4 + got_dims) + " (re-download it)");
  std::vector<int64_t> dims(ndims);
  int64_t count = 1, nonzero = 1;  // nonzero: the product of the non-zero dims (capped)
  for (int i = 0; i < ndims; ++i) {
    const unsigned char* p = dims_raw + 4 * i;
    dims[i] = (int64_t(p[0]) << 24) | (int64_t(p[1]) << 16) | (int64_t(p[2]) << 8) | int64_t(p[3]);
    if (dims[i] > 0)
      nonzero = nonzero > (int64_t(1) << 40) / dims[i] ? int64_t(1) << 40 : nonzero * dims[i];
  }
  for (int64_t d : dims) count = d == 0 ? 0 : count;
  if (count != 0) count = nonzero;
  if (nonzero > (int64_t(1) << 36))
    throw Error("IDX file " + path + " header claims more than " +
                std::to_string(int64_t(1) << 36) +
                " bytes of data, which is implausible (corrupt header)");
  // Memory follows the data actually present, never the header's claim alone: chunks of at
  // most 64 MiB are read until the claimed count or the end of the (possibly gzipped) stream.
  std::vector<uint8_t> data;
  while (static_cast<int64_t>(data.size()) < count) {
    const size_t chunk = static_cast<size_t>(
        std::min<int64_t>(count - static_cast<int64_t>(data.size()), int64_t(64) << 20));
    const size_t old = data.size();
    data.resize(old + chunk);
    const size_t got = read_some(gz.f, reinterpret_cast<char*>(data.data() + old), chunk, path);
    if (got < chunk)
      throw Error("IDX file " + path + " is truncated: expected " + std::to_string(count) +
                  " data bytes, got " + std::to_string(old + got) + " (re-download it)");
  }
  torch::Tensor out = torch::empty(dims, torch::kUInt8);
  if (count > 0) std::memcpy(out.data_ptr<uint8_t>(), data.data(), static_cast<size_t>(count));
  return out;
}

std::pair<torch::Tensor, torch::Tensor> load_mnist_split(const std::string& dir,
                                                         const std::string& split) {
  std::string prefix;
  if (split == "train")
    prefix = "train";
  else if (split == "test" || split == "t10k")
    prefix = "t10k";
  else
    throw Error("unknown split '" + split + "' for " + dir + " (valid: train, test)");
  const std::string images_path = file_for(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = file_for(dir, prefix + "-labels-idx1-ubyte");
  torch::Tensor images = read_idx(images_path);
  torch::Tensor labels = read_idx(labels_path);
  if (images.dim() != 3)
    throw Error("IDX file " + images_path + " has " + std::to_string(images.dim()) +
                " dims, expected 3 (N x H x W images; magic 0x00000803)");
  if (labels.dim() != 1)
    throw Error("IDX file " + labels_path + " has " + std::to_string(labels.dim()) +
                " dims, expected 1 (N labels; magic 0x00000801)");
  if (images.size(0) != labels.size(0))
    throw Error("image/label counts differ: " + images_path + " has " +
                std::to_string(images.size(0)) + " images but " + labels_path + " has " +
                std::to_string(labels.size(0)) + " labels (files from different splits?)");
  return {images, labels.to(torch::kInt64)};
}

}  // namespace gm::data
