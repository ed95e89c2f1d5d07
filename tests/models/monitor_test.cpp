// The train.eval_every monitor (Model::class_monitor): the class entropy of a model's samples
// under the Fashion-MNIST evaluator, the accuracy of the requested classes, and the mode-collapse
// warning, on stand-in models whose samples are known.
#include <gtest/gtest.h>

#include <cstdlib>

#include "genmodels/metrics/evaluator.h"
#include "genmodels/models/registry.h"
#include "test_util.h"

namespace {

// "Samples" are fixed test images: the first n (diverse) or image 0 n times (collapsed).
struct Replay : gm::Model {
  torch::nn::Linear net{1, 1};
  torch::Tensor x, y;
  bool collapsed = false;
  torch::nn::Module& module() override { return *net; }
  gm::SampleResult sample(const gm::SampleRequest& r) override {
    gm::SampleResult s;
    s.x = collapsed ? x.narrow(0, 0, 1).expand({r.n, 1, 28, 28}).contiguous() : x.narrow(0, 0, r.n);
    s.labels = collapsed ? y.narrow(0, 0, 1).expand({r.n}).contiguous() : y.narrow(0, 0, r.n);
    return s;
  }
};

}  // namespace

TEST(Monitor, ClassEntropyAndCollapseWarning) {
  gm::test::TempDir tmp;
  ::setenv("GENMODELS_CACHE", tmp.path.c_str(), 1);
  gm::metrics::EvaluatorOptions o;
  o.limit = 2000;  // a small evaluator is enough to tell one class from ten
  o.epochs = 1;
  gm::metrics::Evaluator::train(o, false).save(tmp.file(gm::metrics::kEvaluatorFile));

  auto [x, y] = gm::metrics::load_fashion_mnist("test");
  Replay model;
  model.x = x.narrow(0, 0, 500);
  model.y = y.narrow(0, 0, 500);
  gm::DataInfo info;
  info.dataset = "fashion-mnist";
  info.shape = {1, 28, 28};
  gm::Config config;
  gm::data::Dataset none;
  gm::TrainSession s{config, info, none, {}, gm::train::RunDir(tmp.file("run")), {}};
  EXPECT_FALSE(static_cast<bool>(model.class_monitor(s, 0)));  // off

  auto diverse = model.class_monitor(s, 10)(10);
  EXPECT_GT(diverse.at("class_entropy"), 0.9);
  EXPECT_GT(diverse.at("class_accuracy"), 0.6);

  model.collapsed = true;
  testing::internal::CaptureStderr();
  auto collapsed = model.class_monitor(s, 10)(20);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(collapsed.at("class_entropy"), 0.0);
  EXPECT_NE(err.find("mode collapse"), std::string::npos) << err;
  EXPECT_NE(err.find("step 20"), std::string::npos) << err;

  // Other data: off, and said so.
  info.shape = {2};
  testing::internal::CaptureStderr();
  EXPECT_FALSE(static_cast<bool>(model.class_monitor(s, 10)));
  EXPECT_NE(testing::internal::GetCapturedStderr().find("off"), std::string::npos);
  ::unsetenv("GENMODELS_CACHE");
}
