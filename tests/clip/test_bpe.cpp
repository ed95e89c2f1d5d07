// Byte-level BPE: the merges a tiny corpus must give, exact round trips of arbitrary bytes
// (invalid UTF-8, control bytes, runs of whitespace), unseen words, save/load, bad files.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "genmodels/clip/bpe.h"
#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"

namespace {

using gm::clip::Bpe;
using gm::clip::pretokenize;

TEST(Bpe, ChunksConcatenateToTheText) {
  EXPECT_EQ(pretokenize("a photo of 2 shoes!"),
            (std::vector<std::string>{"a", " photo", " of", " 2", " shoes", "!"}));
  EXPECT_EQ(pretokenize("x  y\n\tz"), (std::vector<std::string>{"x", " ", " y", "\n\t", "z"}));
  EXPECT_EQ(pretokenize("  "), (std::vector<std::string>{"  "}));
  EXPECT_EQ(pretokenize("caf\xc3\xa9 ok"), (std::vector<std::string>{"caf\xc3\xa9", " ok"}));
  EXPECT_TRUE(pretokenize("").empty());
}

// Chunks "ab", " ab" x2, " ac": (' ', a) and (a, b) both occur 3 times, the tie goes to the
// smaller pair (32, 97) -> " a" (id 256); then (" a", b) occurs twice -> " ab" (257); every other
// pair occurs once, below min_frequency 2.
TEST(Bpe, TinyCorpusGivesTheExpectedMerges) {
  const Bpe bpe = Bpe::train({"ab ab ab ac"}, 100);
  ASSERT_EQ(bpe.merges().size(), 2u);
  EXPECT_EQ(bpe.merges()[0], (std::pair<int32_t, int32_t>{' ', 'a'}));
  EXPECT_EQ(bpe.merges()[1], (std::pair<int32_t, int32_t>{256, 'b'}));
  EXPECT_EQ(bpe.token_bytes(256), " a");
  EXPECT_EQ(bpe.token_bytes(257), " ab");
  EXPECT_EQ(bpe.encode("ab ab ac"), (std::vector<int32_t>{'a', 'b', 257, 256, 'c'}));
  EXPECT_EQ(bpe.vocab_size(), 256 + 2 + 2);
  EXPECT_EQ(bpe.start_token(), 258);
  EXPECT_EQ(bpe.end_token(), 259);
  // the merge budget is respected
  EXPECT_EQ(Bpe::train({"ab ab ab ac"}, 1).merges().size(), 1u);
}

TEST(Bpe, RoundTripsAnyBytes) {
  const Bpe bpe = Bpe::train({"a photo of a sneaker", "a photo of an ankle boot",
                              "black-and-white picture of trainers", "a small dark bag"},
                             60);
  EXPECT_GT(bpe.merges().size(), 10u);
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 40);
  for (int t = 0; t < 500; ++t) {
    std::string s(len(rng), '\0');
    for (auto& c : s) c = static_cast<char>(byte(rng));
    const auto ids = bpe.encode(s);
    ASSERT_EQ(bpe.decode(ids), s) << t;
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < bpe.start_token());
  }
  // words never seen in training still encode, into more (shorter) tokens than seen ones
  const std::string seen = "a photo of", unseen = "a zebra-striped kimono";
  EXPECT_EQ(bpe.decode(bpe.encode(unseen)), unseen);
  EXPECT_EQ(bpe.encode(seen).size(), 3u);  // "a", " photo", " of": all learned
  // start/end decode to nothing
  EXPECT_EQ(bpe.decode({bpe.start_token(), 'h', 'i', bpe.end_token()}), "hi");
  EXPECT_THROW(bpe.decode({static_cast<int32_t>(bpe.vocab_size())}), gm::Error);
}

// BPE-dropout: 0 is exact encoding; any rate still round-trips; rate ~1 leaves bytes; a moderate
// rate splits a learned word into smaller pieces some of the time, and more often at a higher rate.
TEST(Bpe, DropoutSplitsWordsAndStillRoundTrips) {
  const Bpe bpe = Bpe::train({"a photo of a sneaker", "a photo of an ankle boot",
                              "a photo of a sneaker", "black-and-white picture of trainers"},
                             60);
  const std::string text = "a photo of a sneaker";
  const auto exact = bpe.encode(text);
  std::mt19937_64 rng(7);
  EXPECT_EQ(bpe.encode(text, 0.0, rng), exact);
  EXPECT_EQ(bpe.encode(text, 0.999999, rng).size(), text.size());  // every merge skipped: bytes
  auto split_share = [&](double p) {
    int split = 0;
    for (int t = 0; t < 400; ++t) {
      const auto ids = bpe.encode(text, p, rng);
      EXPECT_EQ(bpe.decode(ids), text);
      EXPECT_GE(ids.size(), exact.size());
      split += ids.size() > exact.size();
    }
    return split / 400.0;
  };
  const double low = split_share(0.1), high = split_share(0.4);
  EXPECT_GT(low, 0.2);  // " sneaker" alone takes several merges, each skipped with p = 0.1
  EXPECT_LT(low, 1.0);
  EXPECT_GT(high, low);
}

TEST(Bpe, SavesAndLoadsIdentically) {
  const Bpe bpe = Bpe::train({"a photo of a sneaker", "a photo of a shirt", "photo photo"}, 40);
  const std::string path =
      (std::filesystem::temp_directory_path() / "genmodels_test_bpe.json").string();
  bpe.save(path);
  const Bpe back = Bpe::load(path);
  EXPECT_EQ(back.merges(), bpe.merges());
  EXPECT_EQ(back.to_json(), bpe.to_json());
  EXPECT_EQ(back.encode("a photo of a sandal"), bpe.encode("a photo of a sandal"));
  std::filesystem::remove(path);
}

std::string error_of(const std::string& text) {
  try {
    Bpe::from_json(text, "RUN/bpe.json");
  } catch (const gm::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Bpe, BadVocabularyFilesAreOneLineErrors) {
  EXPECT_NE(error_of("{").find("RUN/bpe.json: not a BPE vocabulary (invalid JSON"),
            std::string::npos);
  EXPECT_NE(error_of("{\"format\": \"x\"}").find("expected \"format\""), std::string::npos);
  EXPECT_NE(error_of("{\"format\": \"genmodels-bpe\", \"version\": 2, \"merges\": []}")
                .find("version 2 is not supported"),
            std::string::npos);
  EXPECT_NE(error_of("{\"format\": \"genmodels-bpe\", \"version\": 1, \"merges\": [[1, 300]]}")
                .find("merge 0 uses token 300"),
            std::string::npos);
  EXPECT_NE(error_of("{\"format\": \"genmodels-bpe\", \"version\": 1, \"merges\": [[1]]}")
                .find("merge 0 is not a pair"),
            std::string::npos);
  for (const std::string& bad : {std::string("{"), std::string("[]")})
    EXPECT_EQ(error_of(bad).find('\n'), std::string::npos);
}

}  // namespace
