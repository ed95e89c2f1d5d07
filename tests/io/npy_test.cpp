// Tests for gm::io::write_npy / read_npy, cross-checked against numpy when it is installed.
#include "genmodels/io/npy.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "genmodels/core/error.h"
#include "test_util.h"

namespace {
namespace fs = std::filesystem;

struct TempDir : gm::test::TempDir {
  TempDir() : gm::test::TempDir("gm_io_npy") {}
};

bool have_numpy() { return std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0; }

TEST(Npy, RoundTripUint8Images) {
  TempDir dir;
  torch::Tensor t = torch::randint(0, 256, {4, 7, 5}, torch::kLong).to(torch::kUInt8);
  gm::io::write_npy(dir.file("u8.npy"), t);
  torch::Tensor back = gm::io::read_npy(dir.file("u8.npy"));
  EXPECT_EQ(back.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(back, t));
  // The header block is 64-byte aligned as numpy requires.
  std::ifstream in(dir.file("u8.npy"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ((bytes.size() - t.numel()) % 64, 0u);
}

TEST(Npy, RoundTripOtherDtypesAndShapes) {
  TempDir dir;
  std::vector<torch::Tensor> cases = {torch::randn({3, 2, 5}), torch::randn({6}, torch::kFloat64),
                                      torch::arange(-5, 7, torch::kInt64).view({3, 4}),
                                      torch::tensor(3.5f),  // 0-d
                                      torch::randn({0, 3})};
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = dir.file("t" + std::to_string(i) + ".npy");
    gm::io::write_npy(path, cases[i]);
    torch::Tensor back = gm::io::read_npy(path);
    EXPECT_EQ(back.scalar_type(), cases[i].scalar_type()) << i;
    EXPECT_EQ(back.sizes(), cases[i].sizes()) << i;
    EXPECT_TRUE(torch::equal(back, cases[i])) << i;
  }
  // Non-contiguous input is written in logical C order.
  torch::Tensor nc = torch::randn({4, 3}).t();
  gm::io::write_npy(dir.file("nc.npy"), nc);
  EXPECT_TRUE(torch::equal(gm::io::read_npy(dir.file("nc.npy")), nc));
}

TEST(Npy, Errors) {
  TempDir dir;
  EXPECT_THROW(gm::io::write_npy(dir.file("b.npy"), torch::zeros({2}, torch::kBool)), gm::Error);
  const std::string bad = dir.file("bad.npy");
  std::ofstream(bad) << "not numpy";
  try {
    gm::io::read_npy(bad);
    FAIL() << "expected gm::Error";
  } catch (const gm::Error& e) {
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
  gm::io::write_npy(dir.file("trunc.npy"), torch::randn({10, 10}));
  fs::resize_file(dir.file("trunc.npy"), fs::file_size(dir.file("trunc.npy")) - 8);
  EXPECT_THROW(gm::io::read_npy(dir.file("trunc.npy")), gm::Error);
  EXPECT_THROW(gm::io::read_npy(dir.file("missing.npy")), gm::Error);
}

TEST(Npy, NumpyLoadsOurFiles) {
  if (!have_numpy()) GTEST_SKIP() << "/usr/bin/python3 has no numpy";
  TempDir dir;
  torch::Tensor f = torch::arange(24, torch::kFloat32).view({2, 3, 4}) * 0.5f;
  torch::Tensor u = torch::arange(30, torch::kLong).view({5, 6}).to(torch::kUInt8);
  gm::io::write_npy(dir.file("f.npy"), f);
  gm::io::write_npy(dir.file("u.npy"), u);
  const std::string cmd =
      "/usr/bin/python3 -c \"import numpy as np, sys; "
      "f = np.load(sys.argv[1]); u = np.load(sys.argv[2]); "
      "assert f.shape == (2, 3, 4) and f.dtype == np.float32, (f.shape, f.dtype); "
      "assert f[1, 2, 3] == 11.5 and f[0, 1, 0] == 2.0; "
      "assert u.shape == (5, 6) and u.dtype == np.uint8, (u.shape, u.dtype); "
      "assert u[4, 5] == 29 and u[1, 0] == 6\" " +
      dir.file("f.npy") + " " + dir.file("u.npy");
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST(Npy, ReadsNumpyWrittenFiles) {
  if (!have_numpy()) GTEST_SKIP() << "/usr/bin/python3 has no numpy";
  TempDir dir;
  const std::string cmd =
      "/usr/bin/python3 -c \"import numpy as np, sys; d = sys.argv[1]; "
      "np.save(d + '/f64.npy', np.arange(12, dtype=np.float64).reshape(3, 4) / 4); "
      "np.save(d + '/i64.npy', np.array([-3, 0, 7], dtype=np.int64)); "
      "np.save(d + '/u8.npy', np.arange(60, dtype=np.uint8).reshape(3, 4, 5)); "
      "np.save(d + '/f32.npy', np.float32(2.25))\" " +
      dir.path.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  torch::Tensor f64 = gm::io::read_npy(dir.file("f64.npy"));
  EXPECT_EQ(f64.scalar_type(), torch::kFloat64);
  EXPECT_TRUE(torch::equal(f64, torch::arange(12, torch::kFloat64).view({3, 4}) / 4));
  torch::Tensor i64 = gm::io::read_npy(dir.file("i64.npy"));
  EXPECT_TRUE(torch::equal(i64, torch::tensor({-3, 0, 7}, torch::kInt64)));
  torch::Tensor u8 = gm::io::read_npy(dir.file("u8.npy"));
  EXPECT_TRUE(torch::equal(u8, torch::arange(60, torch::kLong).view({3, 4, 5}).to(torch::kUInt8)));
  torch::Tensor s = gm::io::read_npy(dir.file("f32.npy"));
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<float>(), 2.25f);
}

}  // namespace
