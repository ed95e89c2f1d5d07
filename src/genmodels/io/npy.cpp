// NumPy .npy reader/writer. Header: "\x93NUMPY", version, header length, then a Python dict
// literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded to 64 bytes.
#include "genmodels/io/npy.h"

#include <cstring>
#include <regex>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"

namespace gm::io {
namespace {

const char kMagic[] = "\x93NUMPY";

std::string descr_for(torch::ScalarType t) {
  switch (t) {
    case torch::kUInt8:
      return "|u1";
    case torch::kFloat32:
      return "<f4";
    case torch::kFloat64:
      return "<f8";
    case torch::kInt64:
      return "<i8";
    default:
      return "";
  }
}

}  // namespace

void write_npy(const std::string& path, const torch::Tensor& t) {
  const std::string descr = descr_for(t.scalar_type());
  if (descr.empty())
    throw Error("write_npy " + path + ": dtype " + std::string(c10::toString(t.scalar_type())) +
                " is not supported (convert to uint8, float32, float64 or int64)");
  torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
  std::string shape = "(";
  for (int64_t i = 0; i < c.dim(); ++i) shape += std::to_string(c.size(i)) + ", ";
  if (c.dim() > 1) shape.resize(shape.size() - 2);  // (3,) keeps its comma; (2, 3) does not
  if (c.dim() == 1) shape.resize(shape.size() - 1);
  shape += ")";
  std::string header =
      "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t prefix = 10;  // magic(6) + version(2) + length(2)
  const size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - prefix - header.size() - 1, ' ');
  header.push_back('\n');
  std::string out(kMagic, 6);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>((header.size() >> 8) & 0xff));
  out += header;
  out.append(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.nbytes()));
  write_file_atomic(path, out);
}

torch::Tensor read_npy(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0)
    throw Error(path + " is not a .npy file (missing \\x93NUMPY magic); save it with numpy.save");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, start = 0;
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  if (major == 1) {
    header_len = u[8] | (size_t(u[9]) << 8);
    start = 10;
  } else if ((major == 2 || major == 3) && bytes.size() >= 12) {
    header_len = u[8] | (size_t(u[9]) << 8) | (size_t(u[10]) << 16) | (size_t(u[11]) << 24);
    start = 12;
  } else {
    throw Error(path + ": unsupported .npy format version " + std::to_string(major) +
                " (save with numpy.save, format 1.0-3.0)");
  }
  if (start + header_len > bytes.size())
    throw Error(path + ": .npy header is truncated (file has " + std::to_string(bytes.size()) +
                " bytes); re-save the file");
  const std::string header = bytes.substr(start, header_len);

  std::smatch m;
  if (!std::regex_search(header, m, std::regex(R"('descr'\s*:\s*'([^']*)')")))
    throw Error(path + ": .npy header has no 'descr' entry (corrupt header: " + header + ")");
  const std::string descr = m[1];
  if (!std::regex_search(header, m, std::regex(R"('fortran_order'\s*:\s*(True|False))")))
    throw Error(path + ": .npy header has no 'fortran_order' entry (corrupt header)");
  if (m[1] == "True")
    throw Error(path + ": Fortran-order .npy is not supported (save np.ascontiguousarray(a))");
  if (!std::regex_search(header, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))")))
    throw Error(path + ": .npy header has no 'shape' entry (corrupt header)");
  std::vector<int64_t> shape;
  const std::string dims = m[1];
  std::regex num(R"(\d+)");
  // The data's size decides what is allocated: a header's dimensions alone never do.
  const size_t have = bytes.size() - start - header_len;
  size_t numel = 1;
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator();
       ++it) {
    const std::string d = it->str();
    if (d.size() > 12)  // 10^12 and more: no array of such a dimension fits in memory
      throw Error(path + ": .npy shape (" + dims +
                  ") is implausible; the file is corrupt, re-save it");
    const size_t v = std::stoull(d);
    numel = v == 0 ? 0 : (numel > have / v ? have + 1 : numel * v);
    shape.push_back(static_cast<int64_t>(v));
  }

  torch::ScalarType type;
  if (descr == "|u1" || descr == "<u1") {
    type = torch::kUInt8;
  } else if (descr == "<f4") {
    type = torch::kFloat32;
  } else if (descr == "<f8") {
    type = torch::kFloat64;
  } else if (descr == "<i8") {
    type = torch::kInt64;
  } else {
    throw Error(path + ": .npy dtype '" + descr +
                "' is not supported (use uint8, little-endian float32, float64 or int64)");
  }
  const size_t elem = c10::elementSize(type);
  if (numel > have || numel * elem > have)
    throw Error(path + ": .npy data is truncated (shape (" + dims + ") needs more than the " +
                std::to_string(have) + " bytes present); re-save the file");
  torch::Tensor t = torch::empty(shape, type);
  const size_t need = static_cast<size_t>(t.nbytes());
  if (need > 0) std::memcpy(t.data_ptr(), bytes.data() + start + header_len, need);
  return t;
}

}  // namespace gm::io
