// Helpers shared by the test programs.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>

#include "genmodels/core/error.h"

namespace gm::test {

/// A fresh directory under the system temp dir, named after the running test, removed at scope end.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "gm") {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = std::filesystem::temp_directory_path() /
           (prefix + "_" + std::to_string(::getpid()) + "_" +
            (info ? std::string(info->test_suite_name()) + "_" + info->name() : "x"));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

/// The message of the gm::Error `f` throws, or "<no gm::Error>".
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const gm::Error& e) {
    return e.what();
  }
  return "<no gm::Error>";
}

/// Every tensor below `archive`, by path ("section/sub/name"; nested modules are nested archives).
inline void collect_tensors(torch::serialize::InputArchive& archive, const std::string& prefix,
                            std::map<std::string, torch::Tensor>& out) {
  for (const auto& key : archive.keys()) {
    torch::Tensor t;
    torch::serialize::InputArchive sub;
    if (archive.try_read(key, t))
      out[prefix + key] = t;
    else if (archive.try_read(key, sub))
      collect_tensors(sub, prefix + key + "/", out);
  }
}

/// Every tensor of a checkpoint file, or of one of its sections ("model", "ema", ...).
inline std::map<std::string, torch::Tensor> checkpoint_tensors(const std::string& path,
                                                               const std::string& section = "") {
  torch::serialize::InputArchive archive, sub;
  archive.load_from(path);
  std::map<std::string, torch::Tensor> out;
  if (section.empty()) {
    collect_tensors(archive, "", out);
  } else {
    archive.read(section, sub);
    collect_tensors(sub, "", out);
  }
  return out;
}

/// Asserts that two checkpoints hold equal tensors under every name except wall time and the
/// optimizer sections (LibTorch keys optimizer state by tensor address); returns how many.
inline int expect_same_checkpoint_tensors(const std::string& a, const std::string& b) {
  const auto ta = checkpoint_tensors(a), tb = checkpoint_tensors(b);
  int checked = 0;
  for (const auto& [name, t] : ta) {
    if (name == "elapsed" || name.rfind("optimizer/", 0) == 0) continue;
    if (!tb.count(name)) {
      ADD_FAILURE() << name << " missing from " << b;
      continue;
    }
    EXPECT_TRUE(torch::equal(t, tb.at(name))) << name;
    ++checked;
  }
  return checked;
}

/// Copies every parameter and buffer of `from` into `to` (the same architecture: registration
/// orders match), keeping `to`'s memory layout.
inline void copy_module_state(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto pf = from.parameters(), pt = to.parameters();
  ASSERT_EQ(pf.size(), pt.size());
  for (size_t i = 0; i < pf.size(); ++i) pt[i].copy_(pf[i]);
  auto bf = from.buffers(), bt = to.buffers();
  ASSERT_EQ(bf.size(), bt.size());
  for (size_t i = 0; i < bf.size(); ++i) bt[i].copy_(bf[i]);
}

/// Asserts that every parameter of `b` has the gradient of the same parameter of `a` (both
/// undefined, or equal within tol * (1 + max |a's gradient|)).
inline void expect_same_grads(torch::nn::Module& a, torch::nn::Module& b, double tol) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    const auto &ga = pa[i].value().grad(), &gb = pb[i].value().grad();
    ASSERT_EQ(ga.defined(), gb.defined()) << pa[i].key();
    if (ga.defined())
      EXPECT_LT((ga - gb).abs().max().item<double>(), tol * (1 + ga.abs().max().item<double>()))
          << pa[i].key();
  }
}

}  // namespace gm::test
