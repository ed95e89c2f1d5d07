// Byte-level byte-pair encoding (Sennrich et al. 2016, "Neural Machine Translation of Rare Words
// with Subword Units", Alg. 1; byte-level base vocabulary as in Radford et al. 2019, GPT-2, Sec.
// 2.2), learned from the training captions and saved in the run, for CLIP's text encoder
// (Radford et al. 2021, Sec. 2.4).
//
// Text is first split into chunks that merges never cross: a run of letters (ASCII letters and
// every byte >= 0x80, so UTF-8 words stay whole), of digits or of other symbols, each optionally
// led by one space; and runs of whitespace. Every byte is a base token (ids 0-255), so any byte
// string encodes, and decoding concatenates token bytes, so decode(encode(s)) == s for every s
// (no normalisation here: callers lower-case captions if they want to). Merge i has id 256 + i;
// the start and end tokens follow the merges.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gm::clip {

/// The chunks of `text` (see the file comment); their concatenation is `text`.
std::vector<std::string> pretokenize(std::string_view text);

class Bpe {
 public:
  /// No merges: bytes only (plus start/end).
  Bpe();
  /// Learns up to `merges` merges from `corpus` (Sennrich et al. Alg. 1 over chunk counts): the
  /// most frequent adjacent pair first, ties to the smaller (left, right) id pair, stopping early
  /// when no pair occurs `min_frequency` times.
  static Bpe train(const std::vector<std::string>& corpus, int64_t merges,
                   int64_t min_frequency = 2);

  std::vector<int32_t> encode(std::string_view text) const;
  /// BPE-dropout (Provilkov et al. 2020, "BPE-Dropout: Simple and Effective Subword
  /// Regularization", Sec. 3): at every merge step each applicable merge is skipped with
  /// probability `dropout`, so a known word is sometimes seen in smaller pieces and the pieces
  /// learn meanings of their own (a training-time regulariser; encoding for use stays exact).
  /// dropout = 0 gives encode(text); decode() of the result is `text` for every dropout.
  std::vector<int32_t> encode(std::string_view text, double dropout, std::mt19937_64& rng) const;
  /// Token bytes concatenated; start/end tokens decode to nothing.
  std::string decode(const std::vector<int32_t>& ids) const;

  int64_t vocab_size() const { return static_cast<int64_t>(tokens_.size()) + 2; }
  int32_t start_token() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t end_token() const { return static_cast<int32_t>(tokens_.size()) + 1; }
  const std::vector<std::pair<int32_t, int32_t>>& merges() const { return merges_; }
  /// The bytes of token `id` (empty for start/end).
  const std::string& token_bytes(int32_t id) const;

  /// JSON text {"format": "genmodels-bpe", "version": 1, "merges": [[l, r], ...]}.
  std::string to_json() const;
  /// Parses to_json's text; errors name `source` (a file path) and what is wrong.
  static Bpe from_json(const std::string& text, const std::string& source);
  /// The merges in order (each pair of ids defined before it); errors name `source`.
  static Bpe from_merges(const std::vector<std::pair<int64_t, int64_t>>& merges,
                         const std::string& source);
  void save(const std::string& path) const;  ///< atomic (core/atomic_file.h)
  static Bpe load(const std::string& path);

 private:
  void add_merge(int32_t left, int32_t right);
  std::vector<int32_t> encode_chunks(std::string_view text, double dropout,
                                     std::mt19937_64* rng) const;
  std::vector<int32_t> encode_chunk(const std::string& chunk, double dropout,
                                    std::mt19937_64* rng) const;

  std::vector<std::pair<int32_t, int32_t>> merges_;
  std::vector<std::string> tokens_;             // bytes of ids 0 .. 255 + merges
  std::unordered_map<uint64_t, int32_t> rank_;  // (left << 32 | right) -> merge index
};

}  // namespace gm::clip
