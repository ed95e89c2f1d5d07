// Tests for gm::io::write_safetensors / read_safetensors: round trips of every dtype, the byte
// layout the spec prescribes, and one malformed file per check of the reader, each refused with a
// one-line error naming the file (and the tensor, where there is one).
#include "genmodels/io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/core/json.h"
#include "test_util.h"

namespace {

using gm::io::NamedTensor;

struct TempDir : gm::test::TempDir {
  TempDir() : gm::test::TempDir("gm_io_st") {}
};

// A file laid out by the spec: 8-byte little-endian header length, the header, the buffer.
std::string st_bytes(const std::string& header, const std::string& buffer = "",
                     int64_t claimed_length = -1) {
  const uint64_t n = claimed_length >= 0 ? uint64_t(claimed_length) : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + header + buffer;
}

// The error reading `bytes` from a file gives; checks it is one line naming the file.
std::string read_error(const TempDir& dir, const std::string& bytes) {
  const std::string path = dir.file("bad.safetensors");
  gm::write_file_atomic(path, bytes);
  const std::string msg = gm::test::error_of([&] { gm::io::read_safetensors(path); });
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  return msg;
}

#define EXPECT_HAS(msg, needle) \
  EXPECT_NE((msg).find(needle), std::string::npos) << "wanted '" << (needle) << "' in: " << (msg)

TEST(Safetensors, RoundTripEveryDtype) {
  TempDir dir;
  const std::vector<NamedTensor> tensors = {
      {"f64", torch::randn({3, 4}, torch::kFloat64)},
      {"f32", torch::randn({2, 3, 5})},
      {"f16", torch::randn({7}).to(torch::kFloat16)},
      {"bf16", torch::randn({2, 2}).to(torch::kBFloat16)},
      {"i64", torch::tensor({-(int64_t{1} << 40), int64_t{7}, int64_t{-3}})},
      {"i32", torch::randint(-100000, 100000, {4, 1}, torch::kInt32)},
      {"i16", torch::randint(-30000, 30000, {5}, torch::kInt16)},
      {"i8", torch::randint(-128, 128, {3, 3}, torch::kInt8)},
      {"u8", torch::randint(0, 256, {9}, torch::kUInt8)},
      {"bool", torch::rand({6}) > 0.5},
      {"scalar", torch::tensor(2.5)},         // 0-rank
      {"empty", torch::zeros({0, 3})},        // no data
      {"strided", torch::randn({4, 6}).t()},  // written contiguous
      {"unet.input_blocks.0.res.conv1.weight", torch::randn({4, 2, 3, 3})},
  };
  const std::string path = dir.file("all.safetensors");
  gm::io::write_safetensors(path, tensors, {{"format", "pt"}, {"note", "ünïcode"}});
  const gm::io::Safetensors back = gm::io::read_safetensors(path);
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    // The data is in the order given (each offset pair follows the previous one).
    EXPECT_EQ(back.tensors[i].name, tensors[i].name);
    const torch::Tensor& t = back.tensors[i].tensor;
    EXPECT_EQ(t.scalar_type(), tensors[i].tensor.scalar_type()) << tensors[i].name;
    EXPECT_EQ(t.sizes(), tensors[i].tensor.sizes()) << tensors[i].name;
    EXPECT_TRUE(torch::equal(t, tensors[i].tensor)) << tensors[i].name;
  }
  EXPECT_EQ(back.metadata.at("format"), "pt");
  EXPECT_EQ(back.metadata.at("note"), "ünïcode");
  ASSERT_NE(back.find("u8"), nullptr);
  EXPECT_EQ(back.find("nope"), nullptr);
  EXPECT_EQ(gm::io::safetensors_dtype(torch::kBFloat16), "BF16");
  EXPECT_EQ(gm::io::safetensors_dtype(torch::kBool), "BOOL");
}

TEST(Safetensors, LayoutFollowsTheSpec) {
  TempDir dir;
  const std::string path = dir.file("x.safetensors");
  gm::io::write_safetensors(
      path, {{"b", torch::tensor({1.0f, -2.0f})}, {"a", torch::full({1}, 258, torch::kInt16)}});
  const std::string bytes = gm::read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);  // padded: the buffer starts 8-byte aligned
  EXPECT_EQ(bytes[8], '{');
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));  // spaces after the JSON only
  const gm::Json j = gm::Json::parse(header);
  EXPECT_EQ(j["b"]["dtype"], "F32");
  EXPECT_EQ(j["b"]["shape"], gm::Json::array({2}));
  EXPECT_EQ(j["b"]["data_offsets"], gm::Json::array({0, 8}));
  EXPECT_EQ(j["a"]["data_offsets"], gm::Json::array({8, 10}));
  EXPECT_FALSE(j.contains("__metadata__"));
  ASSERT_EQ(bytes.size(), 8 + n + 10);
  const std::string buf = bytes.substr(8 + n);
  // Little-endian: 1.0f = 00 00 80 3f, int16 258 = 02 01.
  EXPECT_EQ(buf.substr(0, 4), std::string("\x00\x00\x80\x3f", 4));
  EXPECT_EQ(buf.substr(8, 2), std::string("\x02\x01", 2));
}

TEST(Safetensors, EmptyFileAndEmptyTensorsAreValid) {
  TempDir dir;
  EXPECT_TRUE(gm::io::parse_safetensors(st_bytes("{}"), "x").tensors.empty());
  EXPECT_TRUE(gm::io::parse_safetensors(st_bytes("{}      "), "x").tensors.empty());
  // Zero-size tensors at the same offset, before and after data: no overlap.
  const auto st = gm::io::parse_safetensors(
      st_bytes(R"({"e1": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},
                   "x": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                   "e2": {"dtype": "I64", "shape": [5, 0], "data_offsets": [2, 2]},
                   "__metadata__": {}})",
               "ab"),
      "x");
  ASSERT_EQ(st.tensors.size(), 3u);
  EXPECT_EQ(st.find("e2")->sizes(), (std::vector<int64_t>{5, 0}));
  EXPECT_EQ(st.find("x")->data_ptr<uint8_t>()[1], 'b');
}

TEST(Safetensors, MalformedFilesAreOneLineErrors) {
  TempDir dir;
  const std::string f32x2 = R"("dtype": "F32", "shape": [2], "data_offsets": [0, 8])";
  const std::string eight(8, '\0');
  auto err = [&](const std::string& bytes) { return read_error(dir, bytes); };
  auto one = [&](const std::string& entry, const std::string& buffer = std::string(8, '\0')) {
    return err(st_bytes("{\"w\": {" + entry + "}}", buffer));
  };

  // Header length against the file size and the cap.
  EXPECT_HAS(err("abc"), "too short");
  EXPECT_HAS(err(st_bytes("{}", "", 1000)), "runs past the end of the file");
  EXPECT_HAS(err(st_bytes("{}", "", int64_t{1} << 40)), "100 MB");
  EXPECT_HAS(err(st_bytes("[1, 2]")), "does not start with '{'");
  EXPECT_HAS(err(st_bytes("")), "does not start with '{'");
  // JSON well-formed, valid UTF-8, no duplicates, not nested.
  EXPECT_HAS(err(st_bytes("{\"w\": ")), "not valid JSON");
  EXPECT_HAS(err(st_bytes("{\"w\xff\": 1}")), "not valid JSON");
  EXPECT_HAS(err(st_bytes("{} {}")), "not valid JSON");
  // Found by fuzz_safetensors: nlohmann throws out_of_range, not parse_error, for 1e999.
  EXPECT_HAS(err(st_bytes(R"({"w": 1e999})")), "a number out of range");
  EXPECT_HAS(err(st_bytes(std::string("{}\0\0\0\0\0\0", 8))), "not valid JSON");
  std::string dup = err(st_bytes("{\"w\": {" + f32x2 + "}, \"w\": {" + f32x2 + "}}", eight));
  EXPECT_HAS(dup, "tensor \"w\" appears twice");
  EXPECT_HAS(one(f32x2 + R"(, "dtype": "F32")"), "repeats the key \"dtype\"");
  EXPECT_HAS(err(st_bytes(R"({"w": {"shape": [[[1]]]}})")), "nests deeper");
  // Types of each entry.
  EXPECT_HAS(err(st_bytes(R"({"w": 3})")), "tensor \"w\": expected an object");
  EXPECT_HAS(err(st_bytes(R"({"": {}})")), "empty name");
  EXPECT_HAS(one(R"("shape": [2], "data_offsets": [0, 8])"), "tensor \"w\" has no \"dtype\"");
  EXPECT_HAS(one(R"("dtype": "F32", "data_offsets": [0, 8])"), "has no \"shape\"");
  EXPECT_HAS(one(R"("dtype": "F32", "shape": [2])"), "has no \"data_offsets\"");
  EXPECT_HAS(one(f32x2 + R"(, "stride": [1])"), "unknown field \"stride\"");
  EXPECT_HAS(one(R"("dtype": 4, "shape": [2], "data_offsets": [0, 8])"), "dtype is 4");
  EXPECT_HAS(one(R"("dtype": "F7", "shape": [2], "data_offsets": [0, 8])"),
             "dtype \"F7\" is not a safetensors dtype");
  EXPECT_HAS(one(R"("dtype": "U32", "shape": [2], "data_offsets": [0, 8])"),
             "has no LibTorch equivalent");
  EXPECT_HAS(one(R"("dtype": "F32", "shape": 2, "data_offsets": [0, 8])"), "not an array");
  EXPECT_HAS(one(R"("dtype": "F32", "shape": [-2], "data_offsets": [0, 8])"),
             "shape[0] is -2, not a non-negative integer");
  EXPECT_HAS(one(R"("dtype": "F32", "shape": [2.0], "data_offsets": [0, 8])"),
             "not a non-negative integer");
  EXPECT_HAS(
      one(R"("dtype": "U8", "shape": [4294967296, 4294967296, 0], "data_offsets": [0, 0])", ""),
      "more elements than can exist");
  EXPECT_HAS(one(R"("dtype": "F32", "shape": [2], "data_offsets": [0])"), "not a pair");
  EXPECT_HAS(one(R"("dtype": "F32", "shape": [2], "data_offsets": [0, "8"])"),
             "data_offsets[1] is \"8\"");
  EXPECT_HAS(one(R"("dtype": "F32", "shape": [2], "data_offsets": [8, 0])"), "end before");
  EXPECT_HAS(one(R"("dtype": "F32", "shape": [3], "data_offsets": [0, 8])"),
             "hold 8 bytes, but F32 [3] needs 3 x 4");
  EXPECT_HAS(one(R"("dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 8])"),
             "needs 2305843009213693952 x 8");
  // Offsets against the buffer and each other.
  EXPECT_HAS(one(R"("dtype": "F32", "shape": [2], "data_offsets": [4, 12])"),
             "run past the end of the 8-byte data buffer");
  EXPECT_HAS(one(f32x2, std::string(12, '\0')), "bytes [8, 12) of the data buffer belong to no");
  const std::string two =
      R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})";
  const std::string overlap = err(st_bytes(two, eight));
  EXPECT_HAS(overlap, "tensor \"b\"");
  EXPECT_HAS(overlap, "overlap those of \"a\"");
  const std::string hole = err(st_bytes(
      R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
          "b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]}})",
      "abcdef"));
  EXPECT_HAS(hole, "bytes [2, 4) of the data buffer belong to no tensor (before \"b\"");
  // Values.
  EXPECT_HAS(one(R"("dtype": "BOOL", "shape": [2], "data_offsets": [0, 2])", "\x01\x02"),
             "BOOL element 1 is byte 2");
  EXPECT_HAS(err(st_bytes(R"({"__metadata__": [1]})")), "__metadata__ is array");
  EXPECT_HAS(err(st_bytes(R"({"__metadata__": {"k": 1}})")), "__metadata__ \"k\" is number");
  // A name that would break the line is escaped.
  EXPECT_HAS(err(st_bytes("{\"a\\nb\": 3}")), "tensor \"a\\nb\"");
}

TEST(Safetensors, WriterRefusesWhatTheFormatCannotHold) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  auto err = [&](const std::vector<NamedTensor>& t) {
    return gm::test::error_of([&] { gm::io::write_safetensors(path, t); });
  };
  EXPECT_HAS(err({{"a", torch::zeros({1})}, {"a", torch::zeros({1})}}), "\"a\" given twice");
  EXPECT_HAS(err({{"__metadata__", torch::zeros({1})}}), "cannot store a tensor named");
  EXPECT_HAS(err({{"c", torch::zeros({2}, torch::kComplexFloat)}}), "no dtype for");
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
