// Tests for the 2-D toy distributions and their Dataset wrapper.
#include "genmodels/data/toy2d.h"

#include <gtest/gtest.h>

#include "genmodels/core/error.h"
#include "genmodels/data/dataset.h"

namespace {

TEST(Toy2d, ShapeDeterminismAndScale) {
  for (const auto& name : gm::data::toy2d_names()) {
    SCOPED_TRACE(name);
    torch::Tensor a = gm::data::sample_toy2d(name, 20000, 7);
    ASSERT_EQ(a.sizes(), (std::vector<int64_t>{20000, 2}));
    ASSERT_EQ(a.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::isfinite(a).all().item<bool>());
    EXPECT_TRUE(torch::equal(a, gm::data::sample_toy2d(name, 20000, 7)));
    EXPECT_FALSE(torch::equal(a, gm::data::sample_toy2d(name, 20000, 8)));
    const float rms = (a - a.mean(0)).pow(2).mean().sqrt().item<float>();
    EXPECT_GT(rms, 0.8f);
    EXPECT_LT(rms, 1.2f);
    EXPECT_LT(a.mean(0).abs().max().item<float>(), 0.15f);
  }
}

TEST(Toy2d, DoesNotTouchGlobalGenerator) {
  torch::manual_seed(3);
  torch::Tensor expect = torch::rand({4});
  torch::manual_seed(3);
  gm::data::sample_toy2d("moons", 100, 1);
  EXPECT_TRUE(torch::equal(torch::rand({4}), expect));
}

TEST(Toy2d, UnknownNameListsValidNames) {
  try {
    gm::data::sample_toy2d("spirals", 10, 0);
    FAIL() << "expected gm::Error";
  } catch (const gm::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("spirals"), std::string::npos) << msg;
    for (const auto& name : gm::data::toy2d_names())
      EXPECT_NE(msg.find(name), std::string::npos) << msg;
  }
}

TEST(Toy2d, DatasetSplitsUseDifferentSeeds) {
  gm::data::DataOptions opt;
  opt.toy_points = 1000;
  opt.seed = 5;
  gm::data::Dataset train = gm::data::load_dataset("8gaussians", opt);
  EXPECT_FALSE(train.is_image());
  EXPECT_EQ(train.size(), 1000);
  EXPECT_EQ(train.y.sizes(), (std::vector<int64_t>{1000}));
  EXPECT_EQ(train.y.abs().sum().item<int64_t>(), 0);
  opt.split = "test";
  gm::data::Dataset test = gm::data::load_dataset("8gaussians", opt);
  EXPECT_TRUE(torch::equal(test.x, gm::data::sample_toy2d("8gaussians", 1000, 6)));
  EXPECT_FALSE(torch::equal(test.x, train.x));
}

}  // namespace
