// Image conversion, grids, PNG writing with tEXt metadata (own encoder on zlib: IHDR, tEXt, IDAT,
// IEND) and image decoding with stb_image (the one translation unit holding its implementation).
#include "genmodels/io/image.h"

#include <jpeglib.h>
#include <zlib.h>

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"

#define STB_IMAGE_IMPLEMENTATION
// PNG and BMP only (JPEG: libjpeg-turbo, below); every other decoder is attack surface.
#define STBI_ONLY_PNG
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

constexpr int64_t kMaxPixels = int64_t(1) << 26;  // 8192 x 8192

// JPEG goes through libjpeg-turbo. Debian's stb_image (git 2022-09-08) writes past its Huffman
// size table when a DHT segment declares more than 256 codes, and shifts by negative amounts on
// corrupt entropy-coded data (both found by fuzz_image); libjpeg-turbo is the decoder OSS-Fuzz
// keeps fuzzing. Its errors longjmp back here, so no C++ object lives across the decode: the
// pixels go to a malloc'd buffer owned by plain pointers.
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

extern "C" void jpeg_error_exit(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegError*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}

extern "C" void jpeg_quiet(j_common_ptr, int) {}  // warnings (e.g. truncated data) are not fatal

// Decodes to gray (channels 1, or 0 for a gray file) or RGB; returns the malloc'd pixels or nullptr
// with `error` set.
unsigned char* decode_jpeg(const std::string& bytes, int channels, int* w, int* h, int* c,
                           char* error, size_t error_size) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_quiet;
  unsigned char* volatile pixels = nullptr;
  if (setjmp(err.jump)) {
    std::snprintf(error, error_size, "%s", err.message);
    std::free(pixels);
    jpeg_destroy_decompress(&cinfo);
    return nullptr;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  if (int64_t(cinfo.image_width) * cinfo.image_height > kMaxPixels) {
    std::snprintf(error, error_size, "it claims %u x %u pixels, more than this program reads",
                  cinfo.image_width, cinfo.image_height);
    jpeg_destroy_decompress(&cinfo);
    return nullptr;
  }
  const bool gray = channels == 1 || (channels == 0 && cinfo.num_components == 1);
  cinfo.out_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  *w = static_cast<int>(cinfo.output_width);
  *h = static_cast<int>(cinfo.output_height);
  *c = cinfo.output_components;
  const size_t stride = size_t(*w) * size_t(*c);
  pixels = static_cast<unsigned char*>(std::malloc(stride * size_t(*h) + 1));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = pixels + stride * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return pixels;
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
  int w = 0, h = 0, stored = 0;
  if (bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
      static_cast<unsigned char>(bytes[1]) == 0xD8) {
    char error[JMSG_LENGTH_MAX + 64] = {0};
    unsigned char* px = decode_jpeg(bytes, channels, &w, &h, &stored, error, sizeof error);
    if (px == nullptr)
      throw Error("cannot decode image " + path + ": " + error +
                  " (corrupt JPEG; delete or replace it)");
    torch::Tensor out =
        torch::from_blob(px, {h, w, stored}, torch::kUInt8).clone();  // then the buffer goes
    std::free(px);
    if (channels == 4) out = torch::cat({out, torch::full({h, w, 1}, 255, torch::kUInt8)}, 2);
    return out;
  }
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
