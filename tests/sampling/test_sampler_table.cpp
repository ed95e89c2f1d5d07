// The sampler table and the shared prologue (sampling/samplers.h): the table is the single
// source of names, choices and option keys, and dispatch through draw_samples() gives exactly
// what the sampler's free function gives on the same noise.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/config.h"
#include "genmodels/core/error.h"
#include "genmodels/diffusion/denoiser.h"
#include "genmodels/sampling/samplers.h"
#include "test_util.h"

namespace {

using namespace gm::diffusion;
using namespace gm::sampling;

// A smooth stand-in network: its eps depends on x, t and the label.
NetFn toy_net() {
  return [](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) {
    torch::Tensor shift = y.defined() ? y.to(torch::kFloat).view({-1, 1}) * 0.1 : torch::zeros({1});
    return torch::tanh(x * 0.7 + shift) * (1.0 - t.view({-1, 1}) / 2000.0);
  };
}

}  // namespace

TEST(SamplerTable, IsTheSourceOfNamesChoicesAndKeys) {
  const auto& table = sampler_table();
  ASSERT_FALSE(table.empty());
  const auto keys = sampler_keys().keys();
  auto key_of = [&](const std::string& name) {
    return std::find_if(keys.begin(), keys.end(), [&](const auto& k) { return k.name == name; });
  };
  // sample.sampler's choices are exactly the table's rows, in order.
  auto sampler_key = key_of("sample.sampler");
  ASSERT_NE(sampler_key, keys.end());
  std::vector<std::string> names;
  for (const auto& row : table) names.push_back(row.name);
  EXPECT_EQ(sampler_key->choices, names);
  // Every key a row reads is a bound sample.* key, and every row has a doc line and a function.
  for (const auto& row : table) {
    EXPECT_FALSE(row.doc.empty()) << row.name;
    EXPECT_TRUE(static_cast<bool>(row.run)) << row.name;
    for (const auto& k : row.keys) EXPECT_NE(key_of(k), keys.end()) << row.name << " reads " << k;
  }
  const std::string msg = gm::test::error_of([] { find_sampler("euler_b"); });
  EXPECT_NE(msg.find("ddpm, ddim"), std::string::npos) << msg;
  // The bound defaults come from SamplerOptions{}.
  gm::Config c(keys);
  const SamplerOptions o = sampler_keys().read(c);
  EXPECT_EQ(o.sampler, SamplerOptions{}.sampler);
  EXPECT_EQ(o.guidance, SamplerOptions{}.guidance);
  c.set("sample.eta", "0.5");
  EXPECT_EQ(sampler_keys().read(c).eta, 0.5);
}

TEST(SamplerTable, DrawSamplesEqualsTheFreeFunctions) {
  const NoiseSchedule sched = make_schedule("cosine", 100);
  const Denoiser d(toy_net(), Prediction::Eps, sched);
  SampleJob job;
  job.shape = {3};
  job.n = 10;
  job.seed = 9;
  job.batch = 4;  // three batches, each with its own noise generator
  job.image = false;
  job.cond.labels = torch::arange(10, torch::kInt64).remainder(3);
  job.cond.null_label = 3;

  SamplerOptions o;
  o.sampler = "ddim";
  o.steps = 7;
  o.eta = 0.6;
  o.guidance = 2.0;
  const Drawn drawn = draw_samples(d, o, job);
  ASSERT_EQ(drawn.x.sizes(), (std::vector<int64_t>{10, 3}));
  EXPECT_EQ(drawn.params.at("sampler"), "ddim");
  EXPECT_EQ(drawn.params.at("steps"), "7");
  EXPECT_EQ(drawn.params.at("eta"), "0.6");
  EXPECT_EQ(drawn.params.at("guidance"), "2");
  EXPECT_EQ(drawn.params.count("variance"), 0u);  // ddim does not read it

  // The same computation by hand: one x_T generator, one noise stream per sample.
  torch::Generator gen = at::detail::createCPUGenerator(9);
  const torch::Tensor x_T = torch::randn({10, 3}, gen, torch::kFloat32);
  const auto ts = respace_timesteps(100, 7, parse_spacing(o.spacing));
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t lo = 4 * b, hi = std::min<int64_t>(10, lo + 4);
    Conditioning cond{job.cond.labels.slice(0, lo, hi), 2.0, 3};
    torch::Tensor ref =
        sample_ddim(d, x_T.slice(0, lo, hi), ts, 0.6, cond, Noise::per_row(9, lo, hi - lo));
    EXPECT_TRUE(torch::equal(ref, drawn.x.slice(0, lo, hi))) << "batch " << b;
  }
  EXPECT_EQ(drawn.params.at("nfe"), "7");

  // sample.steps = 0 means the row's default: every model timestep for ddpm, 50 for ddim.
  o.sampler = "ddpm";
  o.steps = 0;
  int64_t calls = 0;
  job.progress = [&](int64_t, int64_t total) { calls = total; };
  EXPECT_EQ(draw_samples(d, o, job).params.at("steps"), "100");
  EXPECT_EQ(calls, 3 * 100);
  EXPECT_EQ(find_sampler("ddim").default_steps, 50);
  EXPECT_THROW(draw_samples(d, SamplerOptions{"nope"}, job), gm::Error);

  // A model trained with fewer timesteps than a row's default gets all of them by default (it
  // used to fail at the end of training, in the final preview); asking for more is an error.
  const Denoiser short_d(toy_net(), Prediction::Eps, make_schedule("cosine", 20));
  o.sampler = "ddim";
  EXPECT_EQ(draw_samples(short_d, o, job).params.at("steps"), "20");
  o.steps = 21;
  EXPECT_THROW(draw_samples(short_d, o, job), gm::Error);
}

// --keep-batches: an interrupted job resumes after its finished batches and gives bit for bit the
// samples of an uninterrupted one, evaluating the network only for the missing batches.
TEST(SamplerTable, KeptBatchesResumeBitIdentically) {
  const NoiseSchedule sched = make_schedule("cosine", 100);
  int64_t calls = 0;
  const NetFn net = toy_net();
  const Denoiser d(
      [&](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) {
        ++calls;
        return net(x, t, y);
      },
      Prediction::Eps, sched);
  SampleJob job;
  job.shape = {3};
  job.n = 10;
  job.seed = 5;
  job.batch = 4;  // batches of rows 0-3, 4-7, 8-9
  job.image = false;
  SamplerOptions o;
  o.sampler = "ddpm";  // stochastic: every step draws the per-sample noise
  o.steps = 6;
  const torch::Tensor reference = draw_samples(d, o, job).x;
  const int64_t full_calls = calls;

  gm::test::TempDir tmp;
  const std::string dir = (tmp.path / "kept").string();
  job.cache = std::make_shared<BatchCache>(dir, "job A");
  calls = 0;
  EXPECT_TRUE(torch::equal(draw_samples(d, o, job).x, reference));
  EXPECT_EQ(calls, full_calls);
  // Interrupted before the middle batch was written: only it is sampled again.
  std::filesystem::remove(dir + "/batch-4-8.pt");
  calls = 0;
  int64_t total = 0;
  job.progress = [&](int64_t, int64_t t) { total = t; };
  const Drawn resumed = draw_samples(d, o, job);
  EXPECT_TRUE(torch::equal(resumed.x, reference));
  EXPECT_EQ(calls, full_calls / 3);
  EXPECT_EQ(total, 6);  // the progress counts the sampled batch only
  EXPECT_EQ(resumed.params.at("nfe"), "6");
  // Everything kept: no network evaluation at all.
  calls = 0;
  EXPECT_TRUE(torch::equal(draw_samples(d, o, job).x, reference));
  EXPECT_EQ(calls, 0);

  // Another job's directory, a directory of other files, and a damaged batch are refused.
  std::string msg = gm::test::error_of([&] { BatchCache(dir, "job B"); });
  EXPECT_NE(msg.find(dir), std::string::npos) << msg;
  EXPECT_NE(msg.find("job A"), std::string::npos) << msg;
  std::filesystem::create_directories(tmp.path / "other");
  gm::write_file_atomic((tmp.path / "other" / "notes.txt").string(), "x");
  msg = gm::test::error_of([&] { BatchCache((tmp.path / "other").string(), "job A"); });
  EXPECT_NE(msg.find("not empty"), std::string::npos) << msg;
  gm::write_file_atomic(dir + "/batch-0-4.pt", "not a tensor");
  msg = gm::test::error_of([&] { draw_samples(d, o, job); });
  EXPECT_NE(msg.find(dir + "/batch-0-4.pt"), std::string::npos) << msg;
}
