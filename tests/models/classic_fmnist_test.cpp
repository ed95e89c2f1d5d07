// The generative classifiers on real Fashion-MNIST through the library's train/sample calls:
// test accuracy equals scikit-learn's on the same features (measured by bench/classic_bench with
// Debian's python3-sklearn 1.2.1: identical predictions for all four), the bits/dim are those of
// proper densities, and class-k samples look like class k to the fitted model and on average.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "genmodels/core/json.h"
#include "genmodels/data/dataset.h"
#include "genmodels/models/run.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

struct Case {
  const char* model;
  double sklearn_accuracy;  // scikit-learn on the same features (bench/classic_bench)
};

gm::Json read_json(const std::string& path) {
  std::ifstream in(path);
  return gm::Json::parse(in);
}

}  // namespace

class ClassicFashionMnist : public ::testing::TestWithParam<Case> {};

TEST_P(ClassicFashionMnist, MatchesScikitLearnAndSamplesItsClasses) {
  const Case c = GetParam();
  gm::test::TempDir dir("gm_classic");
  gm::TrainArgs a;
  a.model = c.model;
  a.data = "fashion-mnist";
  a.out = dir.file("run");
  a.threads = 2;
  gm::run_train(a);
  const gm::Json r = read_json(dir.file("run/report.json"));
  const double acc = r.at("test_accuracy").get<double>();
  std::cout << c.model << ": " << r.dump() << "\n";
  EXPECT_NEAR(acc, c.sklearn_accuracy, 0.005);
  if (std::string(c.model) == "bnb") {
    const double bpd = r.at("test_bits_per_binary_dim").get<double>();
    EXPECT_GT(bpd, 0.1);
    EXPECT_LT(bpd, 1.0);  // below the 1 bit of a fair coin per pixel
  } else {
    // A proper density under the 8-bit dequantisation convention: well below the 8 bits/dim of
    // a uniform model, above 0.
    const double bpd = r.at("test_bits_per_dim").get<double>();
    EXPECT_GT(bpd, 1.0);
    EXPECT_LT(bpd, 8.0);
  }
  EXPECT_TRUE(fs::exists(dir.file("run/samples/fit.png")));

  // Samples of each class: their mean image is close to the class's mean training image.
  gm::data::DataOptions o;
  const gm::data::Dataset train = gm::data::load_dataset("fashion-mnist", o);
  gm::SampleArgs s;
  s.run = a.out;
  s.n = 2000;
  s.seed = 3;
  s.quiet = true;
  const gm::SampleResult res = gm::sample_run(s);
  ASSERT_EQ(res.x.sizes(), torch::IntArrayRef({2000, 1, 28, 28}));
  EXPECT_TRUE(torch::isfinite(res.x).all().item<bool>());
  const bool binary = std::string(c.model) == "bnb";
  torch::Tensor data_means = torch::zeros({10, 784}), sample_means = torch::zeros({10, 784});
  for (int64_t k = 0; k < 10; ++k) {
    torch::Tensor data = train.x.index({train.y == k});
    // bnb models binarised pixels: its samples are black/white images of the binarised data.
    if (binary) data = torch::where(data > 0.0, 1.0, -1.0);  // [-1,1] of x > 0.5 in [0,1]
    data_means[k] = data.mean(0).flatten();
    sample_means[k] = res.x.index({res.labels == k}).mean(0).flatten();
  }
  // Each class's mean sample is nearest to that class's mean image (L2), and close to it
  // (mean |difference|; Gaussian samples are clamped to the pixel range, which lifts the black
  // background a little).
  torch::Tensor dist = torch::cdist(sample_means, data_means);
  EXPECT_TRUE(torch::equal(dist.argmin(1), torch::arange(10))) << dist;
  const double worst = (sample_means - data_means).abs().mean(1).max().item<double>();
  std::cout << c.model << ": worst per-class mean-image error " << worst << "\n";
  EXPECT_LT(worst, binary ? 0.06 : 0.16);
}

INSTANTIATE_TEST_SUITE_P(Models, ClassicFashionMnist,
                         ::testing::Values(Case{"lda", 0.8138}, Case{"qda", 0.7598},
                                           Case{"gnb", 0.6293}, Case{"bnb", 0.6480}),
                         [](const auto& info) { return std::string(info.param.model); });
