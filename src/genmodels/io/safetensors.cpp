// safetensors reader and writer (see safetensors.h). Format, after the spec in Hugging Face's
// safetensors README:
//   bytes [0, 8)        N, unsigned little-endian 64-bit: the header's length
//   bytes [8, 8 + N)    UTF-8 JSON object, starting with '{', padded at the end with spaces:
//                       {"NAME": {"dtype": "F32", "shape": [2, 3], "data_offsets": [B, E]}, ...,
//                        "__metadata__": {"key": "value", ...}}   (metadata optional)
//   bytes [8 + N, end)  the byte buffer: each tensor's little-endian row-major data at [B, E)
//                       relative to the buffer's start; E - B = numel * itemsize; the buffer is
//                       entirely covered by the tensors, without overlaps or holes.
// The spec's other rules kept here: no duplicate names, a header of at most 100 MB (the
// reference implementation's cap), empty (a dimension 0) and 0-rank tensors allowed.
#include "genmodels/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/core/json.h"

namespace gm::io {

namespace {

constexpr uint64_t kMaxHeader = 100'000'000;  // the reference implementation's MAX_HEADER_SIZE
constexpr size_t kMaxRank = 64;
constexpr const char* kMetadataKey = "__metadata__";

struct DType {
  const char* name;
  torch::ScalarType type;
  size_t itemsize;
};

// The format's dtypes that LibTorch 1.13 has (U16, U32, U64 and the F8 types it has not).
constexpr DType kDTypes[] = {
    {"F64", torch::kFloat64, 8},   {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8},   {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},     {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DType* dtype_by_name(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

std::string dtype_list() {
  std::string s;
  for (const auto& d : kDTypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

// A name from the file as an error shows it: JSON-quoted (control characters escaped, so the
// message stays one line) and cut at 80 bytes on a UTF-8 character boundary.
std::string quoted(const std::string& name) {
  std::string s = name;
  if (s.size() > 80) {
    size_t cut = 80;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
    s = s.substr(0, cut) + "...";
  }
  return Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}

uint64_t read_le64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool host_is_little_endian() {
  const uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

// Reverses each `itemsize`-byte element in place (the file is little-endian; a big-endian host
// swaps on the way in and out).
void swap_elements(unsigned char* p, size_t nbytes, size_t itemsize) {
  if (itemsize < 2) return;
  for (size_t i = 0; i + itemsize <= nbytes; i += itemsize) std::reverse(p + i, p + i + itemsize);
}

// One tensor of the header, checked for types.
struct Entry {
  std::string name;
  const DType* dtype = nullptr;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

// Thrown from the JSON parser's callback (duplicate names, nesting) and turned into gm::Error.
struct HeaderProblem {
  std::string what;
};

Json parse_header(const std::string& text, const std::string& origin) {
  // The parser keeps the last of duplicate keys; the spec forbids them, so every object's keys
  // are tracked while parsing. A valid header nests 3 deep (object, entry, shape).
  std::vector<std::set<std::string>> keys;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth > 3) throw HeaderProblem{"the header nests deeper than a safetensors header does"};
    if (event == Json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      keys.pop_back();
    } else if (event == Json::parse_event_t::key) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second)
        throw HeaderProblem{depth == 1 ? "tensor " + quoted(k) + " appears twice in the header"
                                       : "the header repeats the key " + quoted(k)};
    }
    return true;
  };
  try {
    return Json::parse(text, callback);
  } catch (const HeaderProblem& p) {
    throw Error(origin + ": " + p.what + " (a corrupt safetensors file)");
  } catch (const Json::parse_error& e) {
    // nlohmann's message minus its prefix and the raw bytes it quotes ("last read: ...").
    std::string msg = e.what();
    if (const auto col = msg.find("column "); col != std::string::npos)
      if (const auto colon = msg.find(": ", col); colon != std::string::npos)
        msg = msg.substr(colon + 2);
    if (const auto last = msg.find("; last read"); last != std::string::npos)
      msg = msg.substr(0, last);
    throw Error(origin + ": the safetensors header is not valid JSON (at byte " +
                std::to_string(e.byte) + " of the header: " + msg + ")");
  } catch (const Json::exception&) {  // 1e999: out_of_range.406 (found by fuzz_safetensors)
    throw Error(origin + ": the safetensors header is not valid JSON (a number out of range)");
  }
}

// A non-negative integer of the header; `what` names it in the error.
uint64_t header_uint(const Json& v, const std::string& origin, const std::string& what) {
  if (!v.is_number_unsigned())
    throw Error(origin + ": " + what + " is " + v.dump() + ", not a non-negative integer");
  return v.get<uint64_t>();
}

Entry read_entry(const std::string& name, const Json& v, const std::string& origin) {
  const std::string tensor = origin + ": tensor " + quoted(name);
  if (name.empty()) throw Error(origin + ": a tensor has an empty name in the header");
  if (!v.is_object())
    throw Error(tensor + ": expected an object {\"dtype\", \"shape\", \"data_offsets\"}, got " +
                std::string(v.type_name()));
  for (const auto& [k, unused] : v.items())
    if (k != "dtype" && k != "shape" && k != "data_offsets")
      throw Error(tensor + " has an unknown field " + quoted(k) +
                  " (expected dtype, shape, data_offsets)");
  for (const char* k : {"dtype", "shape", "data_offsets"})
    if (!v.contains(k)) throw Error(tensor + " has no \"" + k + "\"");
  Entry e;
  e.name = name;
  const Json& dtype = v.at("dtype");
  if (!dtype.is_string())
    throw Error(tensor + ": dtype is " + dtype.dump() + ", not a string such as \"F32\"");
  e.dtype = dtype_by_name(dtype.get<std::string>());
  if (!e.dtype) {
    const std::string d = dtype.get<std::string>();
    const bool in_spec = d == "U16" || d == "U32" || d == "U64" || d == "F8_E4M3" || d == "F8_E5M2";
    throw Error(tensor + ": dtype " + quoted(d) +
                (in_spec ? " has no LibTorch equivalent; convert the tensor to one of "
                         : " is not a safetensors dtype; expected one of ") +
                dtype_list());
  }
  const Json& shape = v.at("shape");
  if (!shape.is_array()) throw Error(tensor + ": shape is " + shape.dump(-1) + ", not an array");
  if (shape.size() > kMaxRank)
    throw Error(tensor + " has " + std::to_string(shape.size()) + " dimensions (at most " +
                std::to_string(kMaxRank) + " are read)");
  // Every dimension must fit int64 and so must the product of max(d, 1) (LibTorch's strides),
  // even when a 0 makes the tensor empty.
  uint64_t strides = 1, numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const uint64_t d = header_uint(shape[i], tensor, "shape[" + std::to_string(i) + "]");
    if (__builtin_mul_overflow(strides, std::max<uint64_t>(d, 1), &strides) ||
        strides > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw Error(tensor + ": shape " + shape.dump() + " has more elements than can exist");
    numel *= d;  // <= strides: no overflow
    e.shape.push_back(static_cast<int64_t>(d));
  }
  const Json& off = v.at("data_offsets");
  if (!off.is_array() || off.size() != 2)
    throw Error(tensor + ": data_offsets is " + off.dump(-1).substr(0, 80) +
                ", not a pair [begin, end]");
  e.begin = header_uint(off[0], tensor, "data_offsets[0]");
  e.end = header_uint(off[1], tensor, "data_offsets[1]");
  if (e.end < e.begin)
    throw Error(tensor + ": data_offsets [" + std::to_string(e.begin) + ", " +
                std::to_string(e.end) + "] end before they begin");
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, e.dtype->itemsize, &nbytes) || e.end - e.begin != nbytes)
    throw Error(tensor + ": data_offsets [" + std::to_string(e.begin) + ", " +
                std::to_string(e.end) + "] hold " + std::to_string(e.end - e.begin) +
                " bytes, but " + e.dtype->name + " " + shape.dump() + " needs " +
                std::to_string(numel) + " x " + std::to_string(e.dtype->itemsize) +
                " (a corrupt safetensors file)");
  return e;
}

}  // namespace

const torch::Tensor* Safetensors::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t.tensor;
  return nullptr;
}

std::string safetensors_dtype(torch::ScalarType type) {
  for (const auto& d : kDTypes)
    if (d.type == type) return d.name;
  throw Error(std::string("safetensors has no dtype for LibTorch's ") + c10::toString(type) +
              " (it carries " + dtype_list() + ")");
}

Safetensors parse_safetensors(const std::string& bytes, const std::string& origin) {
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  const uint64_t size = bytes.size();
  if (size < 8)
    throw Error(origin + " is too short for a safetensors file (" + std::to_string(size) +
                " bytes; it starts with an 8-byte header length)");
  const uint64_t n = read_le64(u);
  if (n > kMaxHeader)
    throw Error(origin + ": safetensors header length " + std::to_string(n) +
                " exceeds the format's 100 MB limit (not a safetensors file, or corrupt)");
  if (n > size - 8)
    throw Error(origin + ": safetensors header length " + std::to_string(n) +
                " runs past the end of the file (" + std::to_string(size) +
                " bytes; truncated, or not a safetensors file)");
  if (n < 2 || u[8] != '{')
    throw Error(origin + ": the safetensors header does not start with '{' (not a safetensors " +
                "file, or corrupt)");
  const std::string text = bytes.substr(8, n);
  // nlohmann's parser takes a NUL byte for the end of the input; JSON text never holds one (not
  // even inside strings, where control characters are escaped), so "{}\0junk" is refused here.
  if (const auto nul = text.find('\0'); nul != std::string::npos)
    throw Error(origin + ": the safetensors header is not valid JSON (a NUL byte at byte " +
                std::to_string(nul) + " of the header; the format pads with spaces)");
  const Json header = parse_header(text, origin);

  Safetensors out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object())
        throw Error(origin + ": __metadata__ is " + std::string(value.type_name()) +
                    ", not an object of strings");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string())
          throw Error(origin + ": __metadata__ " + quoted(k) + " is " + std::string(v.type_name()) +
                      ", not a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    entries.push_back(read_entry(key, value, origin));
  }

  // The buffer is covered exactly: sorted by offsets, each tensor starts where the last ended.
  const uint64_t buffer = size - 8 - n;
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const Entry* last = nullptr;
  for (const auto& e : entries) {
    const std::string range = "[" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
    if (e.end > buffer)
      throw Error(origin + ": tensor " + quoted(e.name) + ": data_offsets " + range +
                  " run past the end of the " + std::to_string(buffer) +
                  "-byte data buffer (truncated file?)");
    if (e.begin < covered)
      throw Error(origin + ": tensor " + quoted(e.name) + ": data_offsets " + range +
                  " overlap those of " + quoted(last->name) + " (a corrupt safetensors file)");
    if (e.begin > covered)
      throw Error(origin + ": bytes [" + std::to_string(covered) + ", " + std::to_string(e.begin) +
                  ") of the data buffer belong to no tensor (before " + quoted(e.name) +
                  "; the format allows no holes)");
    covered = e.end;
    last = &e;
  }
  if (covered != buffer)
    throw Error(origin + ": bytes [" + std::to_string(covered) + ", " + std::to_string(buffer) +
                ") of the data buffer belong to no tensor (trailing data; the format allows " +
                "no holes)");

  const unsigned char* data = u + 8 + n;
  const bool swap = !host_is_little_endian();
  for (const auto& e : entries) {
    const size_t nbytes = e.end - e.begin;
    if (e.dtype->type == torch::kBool)
      for (size_t i = 0; i < nbytes; ++i)
        if (data[e.begin + i] > 1)
          throw Error(origin + ": tensor " + quoted(e.name) + ": BOOL element " +
                      std::to_string(i) + " is byte " + std::to_string(data[e.begin + i]) +
                      ", not 0 or 1");
    torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype->type));
    if (nbytes > 0) {
      auto* dst = static_cast<unsigned char*>(t.data_ptr());
      std::memcpy(dst, data + e.begin, nbytes);
      if (swap) swap_elements(dst, nbytes, e.dtype->itemsize);
    }
    out.tensors.push_back({e.name, t});
  }
  return out;
}

Safetensors read_safetensors(const std::string& path) {
  return parse_safetensors(read_file(path), path);
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == kMetadataKey)
      throw Error(path + ": cannot store a tensor named " + quoted(name) + " in safetensors");
    if (header.contains(name)) throw Error(path + ": tensor " + quoted(name) + " given twice");
    if (!tensor.defined()) throw Error(path + ": tensor " + quoted(name) + " is undefined");
    std::string dtype;
    try {
      dtype = safetensors_dtype(tensor.scalar_type());
    } catch (const Error& e) {
      throw Error(path + ": tensor " + quoted(name) + ": " + e.what());
    }
    const torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {
        {"dtype", dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(t);
  }
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::type_error&) {  // names or metadata that are not UTF-8
    throw Error(path + ": tensor names and metadata must be UTF-8 text");
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the buffer starts 8-byte aligned
  const bool swap = !host_is_little_endian();
  write_file_atomic(path, [&](std::ostream& out) {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(text.size() >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& t : data) {
      const auto nbytes = static_cast<size_t>(t.numel()) * t.element_size();
      if (nbytes == 0) continue;
      if (swap) {
        std::string copy(static_cast<const char*>(t.data_ptr()), nbytes);
        swap_elements(reinterpret_cast<unsigned char*>(copy.data()), nbytes, t.element_size());
        out.write(copy.data(), static_cast<std::streamsize>(nbytes));
      } else {
        out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(nbytes));
      }
    }
  });
}

}  // namespace gm::io
