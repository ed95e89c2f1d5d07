// Byte-level BPE (see bpe.h for the papers and the chunking rule).
#include "genmodels/clip/bpe.h"

#include <algorithm>
#include <map>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/core/json.h"

namespace gm::clip {
namespace {

enum class CharClass { Space, Letter, Digit, Other };

CharClass char_class(unsigned char c) {
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
    return CharClass::Space;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return CharClass::Letter;
  if (c >= '0' && c <= '9') return CharClass::Digit;
  return CharClass::Other;
}

uint64_t pair_key(int32_t l, int32_t r) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
}

// Replaces every non-overlapping (l, r), left to right, by `id`.
// Replaces every (l, r) pair of s by id, left to right; with `kept`, only pairs starting at a
// position i where kept[i] is set (BPE-dropout's surviving pairs).
void merge_in_place(std::vector<int32_t>& s, int32_t l, int32_t r, int32_t id,
                    const std::vector<char>* kept = nullptr) {
  size_t w = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i + 1 < s.size() && s[i] == l && s[i + 1] == r && (!kept || (*kept)[i])) {
      s[w++] = id;
      ++i;
    } else {
      s[w++] = s[i];
    }
  }
  s.resize(w);
}

std::vector<int32_t> bytes_of(const std::string& chunk) {
  std::vector<int32_t> s(chunk.size());
  for (size_t i = 0; i < chunk.size(); ++i) s[i] = static_cast<unsigned char>(chunk[i]);
  return s;
}

}  // namespace

std::vector<std::string> pretokenize(std::string_view text) {
  std::vector<std::string> out;
  const size_t n = text.size();
  size_t i = 0;
  auto cls = [&](size_t k) { return char_class(static_cast<unsigned char>(text[k])); };
  auto run_end = [&](size_t k, CharClass c) {
    while (k < n && cls(k) == c) ++k;
    return k;
  };
  while (i < n) {
    const CharClass c = cls(i);
    size_t j;
    if (text[i] == ' ' && i + 1 < n && cls(i + 1) != CharClass::Space) {
      j = run_end(i + 1, cls(i + 1));  // " word": one leading space joins the run after it
    } else if (c == CharClass::Space) {
      j = run_end(i, c);
      // leave a final ' ' to lead the next chunk
      if (j < n && j - 1 > i && text[j - 1] == ' ') --j;
    } else {
      j = run_end(i, c);
    }
    out.emplace_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

Bpe::Bpe() {
  tokens_.reserve(256);
  for (int b = 0; b < 256; ++b) tokens_.emplace_back(1, static_cast<char>(b));
}

void Bpe::add_merge(int32_t left, int32_t right) {  // the new token's id is tokens_.size()
  rank_[pair_key(left, right)] = static_cast<int32_t>(merges_.size());
  merges_.emplace_back(left, right);
  tokens_.push_back(tokens_[left] + tokens_[right]);
}

Bpe Bpe::train(const std::vector<std::string>& corpus, int64_t merges, int64_t min_frequency) {
  if (merges < 0) throw Error("bpe: merges = " + std::to_string(merges) + " must be >= 0");
  if (min_frequency < 1)
    throw Error("bpe: min_frequency = " + std::to_string(min_frequency) + " must be >= 1");
  std::map<std::string, int64_t> counts;  // ordered: the same corpus always trains the same way
  for (const auto& line : corpus)
    for (auto& chunk : pretokenize(line)) ++counts[chunk];
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> freq;
  for (const auto& [chunk, count] : counts) {
    if (chunk.size() < 2) continue;  // nothing to merge inside
    words.push_back(bytes_of(chunk));
    freq.push_back(count);
  }
  Bpe bpe;
  for (int64_t m = 0; m < merges; ++m) {
    std::map<std::pair<int32_t, int32_t>, int64_t> pairs;  // ordered: ties go to the smaller pair
    for (size_t w = 0; w < words.size(); ++w)
      for (size_t i = 0; i + 1 < words[w].size(); ++i)
        pairs[{words[w][i], words[w][i + 1]}] += freq[w];
    std::pair<int32_t, int32_t> best{-1, -1};
    int64_t best_count = 0;
    for (const auto& [p, count] : pairs)
      if (count > best_count) best = p, best_count = count;
    if (best_count < min_frequency) break;
    const int32_t id = static_cast<int32_t>(bpe.tokens_.size());
    bpe.add_merge(best.first, best.second);
    for (auto& w : words) merge_in_place(w, best.first, best.second, id);
  }
  return bpe;
}

// Greedy by rank (the order merges were learned), as training applied them.
std::vector<int32_t> Bpe::encode_chunk(const std::string& chunk, double dropout,
                                       std::mt19937_64* rng) const {
  std::vector<int32_t> s = bytes_of(chunk);
  const bool drop = rng != nullptr && dropout > 0;
  std::bernoulli_distribution skip(drop ? std::min(dropout, 1.0) : 0.0);
  std::vector<char> kept;  // with dropout: the positions whose pair survived this step's draw
  while (s.size() > 1) {
    int32_t best_rank = -1;
    if (drop) kept.assign(s.size(), 0);
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      auto it = rank_.find(pair_key(s[i], s[i + 1]));
      if (it == rank_.end()) continue;
      if (drop) {
        if (skip(*rng)) continue;
        kept[i] = 1;
      }
      if (best_rank < 0 || it->second < best_rank) best_rank = it->second;
    }
    if (best_rank < 0) break;  // no merge applies (or, with dropout, every one was skipped)
    const auto [l, r] = merges_[best_rank];
    merge_in_place(s, l, r, 256 + best_rank, drop ? &kept : nullptr);
  }
  return s;
}

std::vector<int32_t> Bpe::encode(std::string_view text) const {
  return encode_chunks(text, 0.0, nullptr);
}

std::vector<int32_t> Bpe::encode(std::string_view text, double dropout,
                                 std::mt19937_64& rng) const {
  return encode_chunks(text, dropout, &rng);
}

std::vector<int32_t> Bpe::encode_chunks(std::string_view text, double dropout,
                                        std::mt19937_64* rng) const {
  std::vector<int32_t> ids;
  for (const auto& chunk : pretokenize(text)) {
    const auto part = encode_chunk(chunk, dropout, rng);
    ids.insert(ids.end(), part.begin(), part.end());
  }
  return ids;
}

const std::string& Bpe::token_bytes(int32_t id) const {
  static const std::string empty;
  if (id < 0 || id >= vocab_size())
    throw Error("bpe: token id " + std::to_string(id) + " outside [0, " +
                std::to_string(vocab_size()) + ")");
  return id < static_cast<int32_t>(tokens_.size()) ? tokens_[id] : empty;
}

std::string Bpe::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) out += token_bytes(id);
  return out;
}

std::string Bpe::to_json() const {
  Json j = {{"format", "genmodels-bpe"}, {"version", 1}, {"merges", Json::array()}};
  for (const auto& [l, r] : merges_) j["merges"].push_back({l, r});
  return j.dump() + "\n";
}

Bpe Bpe::from_json(const std::string& text, const std::string& source) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const std::exception& e) {
    throw Error(source + ": not a BPE vocabulary (invalid JSON: " + std::string(e.what()) + ")");
  }
  if (!j.is_object() || j.value("format", "") != "genmodels-bpe")
    throw Error(source + ": not a BPE vocabulary (expected \"format\": \"genmodels-bpe\")");
  if (j.value("version", 0) != 1)
    throw Error(source + ": BPE vocabulary version " + j.value("version", Json(0)).dump() +
                " is not supported (this program reads version 1)");
  if (!j.contains("merges") || !j["merges"].is_array())
    throw Error(source + ": BPE vocabulary has no \"merges\" array");
  std::vector<std::pair<int64_t, int64_t>> merges;
  for (const auto& m : j["merges"]) {
    if (!m.is_array() || m.size() != 2 || !m[0].is_number_integer() || !m[1].is_number_integer())
      throw Error(source + ": merge " + std::to_string(merges.size()) +
                  " is not a pair of token ids");
    merges.emplace_back(m[0].get<int64_t>(), m[1].get<int64_t>());
  }
  return from_merges(merges, source);
}

Bpe Bpe::from_merges(const std::vector<std::pair<int64_t, int64_t>>& merges,
                     const std::string& source) {
  Bpe bpe;
  for (size_t i = 0; i < merges.size(); ++i) {
    const int32_t next = static_cast<int32_t>(bpe.tokens_.size());
    const auto [l, r] = merges[i];
    if (l < 0 || r < 0 || l >= next || r >= next)
      throw Error(source + ": merge " + std::to_string(i) + " uses token " +
                  std::to_string(l < 0 || l >= next ? l : r) + ", which is not defined before it");
    bpe.add_merge(static_cast<int32_t>(l), static_cast<int32_t>(r));
  }
  return bpe;
}

void Bpe::save(const std::string& path) const { write_file_atomic(path, to_json()); }

Bpe Bpe::load(const std::string& path) { return from_json(read_file(path), path); }

}  // namespace gm::clip
