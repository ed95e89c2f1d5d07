// safetensors files (Hugging Face's weights format; spec: github.com/huggingface/safetensors,
// README "Format"): an 8-byte little-endian uint64 N, N bytes of UTF-8 JSON mapping each tensor
// name to {"dtype", "shape", "data_offsets": [begin, end]} (plus an optional "__metadata__"
// object of strings), then one byte buffer holding every tensor's little-endian, row-major data,
// the offsets relative to its start. The reader trusts nothing in the file: every claim of the
// header is checked against the bytes present before anything is allocated.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace gm::io {

struct NamedTensor {
  std::string name;
  torch::Tensor tensor;
};

/// What a safetensors file holds.
struct Safetensors {
  std::vector<NamedTensor> tensors;             ///< in the order of their data in the buffer
  std::map<std::string, std::string> metadata;  ///< the "__metadata__" object (may be empty)
  /// The tensor named `name`, or nullptr.
  const torch::Tensor* find(const std::string& name) const;
};

/// The format's name of a LibTorch dtype ("F32", "BF16", "BOOL", ...); throws gm::Error for
/// dtypes the format (or this reader) does not carry.
std::string safetensors_dtype(torch::ScalarType type);

/// Writes `tensors` (CPU or not, any layout; copied contiguous) in the given order with
/// `metadata`, the header padded with spaces to a multiple of 8 bytes, atomically. Names must be
/// unique, non-empty and not "__metadata__".
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

/// Reads a safetensors file (dtypes F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL). Every
/// problem is a one-line gm::Error naming the file and, where there is one, the tensor: header
/// length against the file size and the format's 100 MB cap, malformed JSON or wrong types,
/// duplicate names, unknown dtypes, offsets outside the buffer or disagreeing with the shape,
/// overlapping tensors and bytes that belong to no tensor.
Safetensors read_safetensors(const std::string& path);

/// The same from the file's bytes; `origin` names them in errors.
Safetensors parse_safetensors(const std::string& bytes, const std::string& origin);

}  // namespace gm::io
