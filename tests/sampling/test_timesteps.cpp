// Timestep respacing against Lin et al. 2023, Table 2 (T = 1000, 10 steps).
#include <gtest/gtest.h>

#include "genmodels/core/error.h"
#include "genmodels/sampling/samplers.h"

namespace {

using namespace gm::sampling;

TEST(Timesteps, LinTable2) {
  EXPECT_EQ(respace_timesteps(1000, 10, Spacing::Linspace),
            (std::vector<int64_t>{999, 888, 777, 666, 555, 444, 333, 222, 111, 0}));
  EXPECT_EQ(respace_timesteps(1000, 10, Spacing::Leading),
            (std::vector<int64_t>{900, 800, 700, 600, 500, 400, 300, 200, 100, 0}));
  EXPECT_EQ(respace_timesteps(1000, 10, Spacing::Trailing),
            (std::vector<int64_t>{999, 899, 799, 699, 599, 499, 399, 299, 199, 99}));
  // non-divisible case: 1000 / 3
  EXPECT_EQ(respace_timesteps(1000, 3, Spacing::Trailing), (std::vector<int64_t>{999, 666, 332}));
  EXPECT_EQ(respace_timesteps(1000, 3, Spacing::Linspace), (std::vector<int64_t>{999, 500, 0}));
}

TEST(Timesteps, FullStepsAndValidity) {
  for (auto sp : {Spacing::Linspace, Spacing::Leading, Spacing::Trailing}) {
    auto ts = respace_timesteps(50, 50, sp);
    ASSERT_EQ(ts.size(), 50u);
    for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(ts[i], 49 - i);
    for (int64_t steps : {1, 7, 33, 999, 1000}) {
      auto r = respace_timesteps(1000, steps, sp);
      ASSERT_EQ(static_cast<int64_t>(r.size()), steps);
      EXPECT_NO_THROW(check_timesteps(r, 1000, "test"));
    }
    EXPECT_EQ(parse_spacing(to_string(sp)), sp);
  }
  EXPECT_THROW(respace_timesteps(100, 0, Spacing::Linspace), gm::Error);
  EXPECT_THROW(respace_timesteps(100, 101, Spacing::Linspace), gm::Error);
  EXPECT_THROW(parse_spacing("uniform"), gm::Error);
  EXPECT_THROW(check_timesteps({5, 5, 1}, 10, "test"), gm::Error);
  EXPECT_THROW(check_timesteps({10, 5}, 10, "test"), gm::Error);
  EXPECT_THROW(check_timesteps({}, 10, "test"), gm::Error);
}

TEST(Samplers, Registry) {
  std::vector<std::string> names;
  for (const auto& [name, doc] : sampler_names()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"ddpm", "ddim", "euler", "heun", "euler_a", "lms",
                                             "dpm++2m", "dpm++2m_sde", "dpm++2s_a", "unipc", "pc",
                                             "langevin", "ode"}));
  EXPECT_NO_THROW(check_sampler_name("dpm++2m"));
  EXPECT_THROW(check_sampler_name("euler_b"), gm::Error);
  EXPECT_EQ(ddpm_variance("beta_tilde", true), DdpmVariance::BetaTilde);
  EXPECT_EQ(ddpm_variance("auto", false), DdpmVariance::BetaTilde);
  EXPECT_EQ(ddpm_variance("auto", true), DdpmVariance::Learned);
  EXPECT_EQ(ddpm_variance("learned", false), DdpmVariance::Learned);  // sample_ddpm rejects it
  EXPECT_THROW(ddpm_variance("large", false), gm::Error);
}

}  // namespace
