// Image conversion, grids, PNG writing with tEXt metadata (own encoder on zlib: IHDR, tEXt, IDAT,
// IEND) and image decoding with stb_image (the one translation unit holding its implementation).
#include "genmodels/io/image.h"

#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <system_error>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"

#define STB_IMAGE_IMPLEMENTATION
// Only the formats the program reads: every other decoder is attack surface (#19's fuzzing).
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
// A 54-byte BMP may claim 3 million rows (fuzz_image): sizes are capped before any allocation.
#define STBI_MAX_DIMENSIONS (1 << 14)
#define STBI_FAILURE_USERMSG
#include <stb/stb_image.h>

namespace gm::io {
namespace {

const unsigned char kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

std::string shape_str(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? " x " : "") + std::to_string(t.size(i));
  return s + "]";
}

void put_u32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>((v >> 24) & 0xff));
  out.push_back(static_cast<char>((v >> 16) & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

uint32_t get_u32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

void put_chunk(std::string& out, const char type[4], const std::string& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  std::string body(type, 4);
  body += data;
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()));
  out += body;
  put_u32(out, static_cast<uint32_t>(crc));
}

}  // namespace

torch::Tensor to_uint8(const torch::Tensor& images) {
  if (images.dim() != 4 || (images.size(1) != 1 && images.size(1) != 3))
    throw Error("to_uint8: expected float images N x C x H x W with C = 1 or 3, got " +
                shape_str(images) + " (reshape the batch to NCHW)");
  torch::Tensor x = images.detach().to(torch::kCPU, torch::kFloat32).nan_to_num(0.0);
  x = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().clamp(0, 255).to(torch::kUInt8);
  return x.permute({0, 2, 3, 1}).contiguous();
}

torch::Tensor from_uint8(const torch::Tensor& pixels) {
  if (pixels.scalar_type() != torch::kUInt8 || (pixels.dim() != 3 && pixels.dim() != 4))
    throw Error("from_uint8: expected uint8 N x H x W [x C], got " + shape_str(pixels) + " of " +
                std::string(c10::toString(pixels.scalar_type())) + " (convert to uint8 first)");
  torch::Tensor x = pixels.to(torch::kCPU);
  x = pixels.dim() == 3 ? x.unsqueeze(1) : x.permute({0, 3, 1, 2});
  return (x.to(torch::kFloat32) / 127.5 - 1.0).contiguous();
}

torch::Tensor make_grid(const torch::Tensor& images, int64_t nrow, int64_t padding) {
  if (images.dim() != 4 || images.size(0) == 0)
    throw Error("make_grid: expected a non-empty N x C x H x W batch, got " + shape_str(images));
  if (nrow < 1 || padding < 0)
    throw Error("make_grid: nrow must be >= 1 and padding >= 0 (got nrow " + std::to_string(nrow) +
                ", padding " + std::to_string(padding) + ")");
  torch::Tensor px = to_uint8(images);  // N x H x W x C
  const int64_t n = px.size(0), h = px.size(1), w = px.size(2), c = px.size(3);
  const int64_t cols = std::min(nrow, n), rows = (n + cols - 1) / cols;
  torch::Tensor grid = torch::zeros(
      {rows * (h + padding) + padding, cols * (w + padding) + padding, c}, torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = i / cols, col = i % cols;
    const int64_t y0 = padding + r * (h + padding), x0 = padding + col * (w + padding);
    grid.slice(0, y0, y0 + h).slice(1, x0, x0 + w).copy_(px[i]);
  }
  return grid;
}

void write_png(const std::string& path, const torch::Tensor& image,
               const std::map<std::string, std::string>& text) {
  torch::Tensor img = image;
  if (img.dim() == 2) img = img.unsqueeze(2);
  if (img.scalar_type() != torch::kUInt8 || img.dim() != 3 ||
      (img.size(2) != 1 && img.size(2) != 3 && img.size(2) != 4) || img.size(0) < 1 ||
      img.size(1) < 1)
    throw Error("write_png " + path + ": expected uint8 H x W or H x W x C (C = 1, 3, 4), got " +
                shape_str(image) + " of " + std::string(c10::toString(image.scalar_type())) +
                " (use gm::io::to_uint8 or make_grid)");
  img = img.to(torch::kCPU).contiguous();
  const int64_t h = img.size(0), w = img.size(1), c = img.size(2);
  if (h > 0x7fffffff || w > 0x7fffffff) throw Error("write_png " + path + ": image too large");

  std::string png(reinterpret_cast<const char*>(kPngSignature), 8);
  std::string ihdr;
  put_u32(ihdr, static_cast<uint32_t>(w));
  put_u32(ihdr, static_cast<uint32_t>(h));
  ihdr.push_back(8);                              // bit depth
  ihdr.push_back(c == 1 ? 0 : (c == 3 ? 2 : 6));  // colour type: gray, RGB, RGBA
  ihdr.append(3, '\0');                           // compression, filter, interlace
  put_chunk(png, "IHDR", ihdr);

  for (const auto& [key, value] : text) {
    if (key.empty() || key.size() > 79 || key.find('\0') != std::string::npos ||
        value.find('\0') != std::string::npos)
      throw Error("write_png " + path + ": bad tEXt key '" + key +
                  "' (keys must be 1-79 bytes, keys and values without NUL bytes)");
    put_chunk(png, "tEXt", key + std::string(1, '\0') + value);
  }

  // Raw scanlines, each prefixed by filter type 0 (None).
  const int64_t stride = w * c;
  std::string raw(static_cast<size_t>(h * (stride + 1)), '\0');
  const auto* src = img.data_ptr<uint8_t>();
  for (int64_t y = 0; y < h; ++y)
    std::memcpy(&raw[static_cast<size_t>(y * (stride + 1) + 1)], src + y * stride,
                static_cast<size_t>(stride));
  uLongf zlen = compressBound(static_cast<uLong>(raw.size()));
  std::string idat(zlen, '\0');
  int rc = compress2(reinterpret_cast<Bytef*>(&idat[0]), &zlen,
                     reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()), 6);
  if (rc != Z_OK)
    throw Error("write_png " + path + ": zlib compress2 failed with code " + std::to_string(rc));
  idat.resize(zlen);
  put_chunk(png, "IDAT", idat);
  put_chunk(png, "IEND", "");
  write_file_atomic(path, png);
}

std::map<std::string, std::string> read_png_text(const std::string& path) {
  const std::string bytes = read_file(path);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 8 || std::memcmp(p, kPngSignature, 8) != 0)
    throw Error(path +
                " is not a PNG file (missing PNG signature); pass a .png written by genmodels");
  std::map<std::string, std::string> text;
  size_t pos = 8;
  while (pos + 12 <= bytes.size()) {
    const uint32_t len = get_u32(p + pos);
    const std::string type(bytes, pos + 4, 4);
    if (len > bytes.size() - pos - 12)
      throw Error(path + ": PNG chunk '" + type + "' at byte " + std::to_string(pos) +
                  " runs past the end of the file (truncated or corrupt PNG)");
    const std::string data(bytes, pos + 8, len);
    if (type == "tEXt") {
      const size_t nul = data.find('\0');
      if (nul != std::string::npos) text[data.substr(0, nul)] = data.substr(nul + 1);
    } else if (type == "iTXt") {
      // keyword \0 compression-flag method language \0 translated-keyword \0 text
      const size_t k = data.find('\0');
      if (k != std::string::npos && k + 2 < data.size() && data[k + 1] == 0) {
        const size_t lang = data.find('\0', k + 3);
        const size_t tkey = lang == std::string::npos ? lang : data.find('\0', lang + 1);
        if (tkey != std::string::npos) text[data.substr(0, k)] = data.substr(tkey + 1);
      }
    }
    pos += 12 + len;
    if (type == "IEND") break;
  }
  return text;
}

namespace {

// Debian's stb_image (git 2022-09-08) writes past its 257-entry Huffman size table when a JPEG's
// DHT segment declares more than 256 codes (found by fuzz_image). JPEG allows at most 256 symbols
// per table, so such files are refused before stb sees them. Walks the markers up to the first
// scan; returns "" when the tables are sound (or the bytes are not a JPEG).
constexpr int64_t kMaxPixels = int64_t(1) << 26;  // 8192 x 8192

std::string jpeg_table_problem(const std::string& b) {
  const auto* u = reinterpret_cast<const unsigned char*>(b.data());
  const size_t n = b.size();
  size_t i = 0;  // stb accepts any run of 0xFF fill bytes before the SOI marker
  while (i < n && u[i] == 0xFF) ++i;
  if (i == 0 || i >= n || u[i] != 0xD8) return "";
  ++i;
  while (i + 4 <= n) {
    if (u[i] != 0xFF) {  // padding between segments: stb scans on to the next marker, so do we
      ++i;
      continue;
    }
    const unsigned marker = u[i + 1];
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
      i += 2;
      continue;
    }
    if (marker == 0xD9) return "";
    const size_t len = (size_t(u[i + 2]) << 8) | u[i + 3];
    if (len < 2) return "";
    if (marker == 0xC4) {  // DHT: tables of (class/id, 16 counts, symbols), read as stb does:
      size_t p = i + 4;    // while the segment has bytes left, past the file's end as zeros
      const size_t end = i + 2 + len;
      while (p < end && p < n) {
        size_t codes = 0;
        for (size_t k = p + 1; k <= p + 16 && k < n; ++k) codes += u[k];
        if (codes > 256)
          return "a Huffman table declares " + std::to_string(codes) + " codes (at most 256)";
        p += 17 + codes;
      }
    }
    if (i + 2 + len > n) return "";
    if (marker == 0xDA) {  // a scan: entropy-coded data runs to the next marker
      i += 2 + len;
      while (i + 1 < n &&
             !(u[i] == 0xFF && u[i + 1] != 0x00 && (u[i + 1] < 0xD0 || u[i + 1] > 0xD7)))
        ++i;
      continue;
    }
    i += 2 + len;
  }
  return "";
}

}  // namespace

torch::Tensor read_image(const std::string& path, int channels) {
  if (channels != 0 && channels != 1 && channels != 3 && channels != 4)
    throw Error("read_image " + path + ": channels must be 0 (as stored), 1 or 3, got " +
                std::to_string(channels));
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw Error("image " + path + " does not exist (check the path)");
  if (std::filesystem::is_directory(path, ec))
    throw Error("image " + path + " is a directory, not an image file");
  if (std::filesystem::file_size(path, ec) == 0 && !ec)
    throw Error("image " + path + " is empty (0 bytes); delete or replace it");
  const std::string bytes = read_file(path);
  if (const std::string bad = jpeg_table_problem(bytes); !bad.empty())
    throw Error("cannot decode image " + path + ": " + bad +
                " (corrupt JPEG; delete or replace it)");
  int w = 0, h = 0, stored = 0;
  if (stbi_info_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                            static_cast<int>(bytes.size()), &w, &h, &stored) &&
      int64_t(w) * h > kMaxPixels)
    throw Error("image " + path + " claims " + std::to_string(w) + " x " + std::to_string(h) +
                " pixels, more than this program reads (" + std::to_string(kMaxPixels) +
                "); resize it");
  unsigned char* pixels =
      stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                            static_cast<int>(bytes.size()), &w, &h, &stored, channels);
  if (pixels == nullptr)
    throw Error("cannot decode image " + path + ": " + stbi_failure_reason() +
                " (corrupt or not PNG/JPEG/BMP; delete or replace it)");
  const int c = channels == 0 ? stored : channels;
  torch::Tensor out = torch::empty({h, w, c}, torch::kUInt8);
  std::memcpy(out.data_ptr<uint8_t>(), pixels, static_cast<size_t>(h) * w * c);
  stbi_image_free(pixels);
  return out;
}

}  // namespace gm::io
