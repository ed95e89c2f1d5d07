// Data-parallel primitives (train/distributed.h) with two ranks as two threads of this process,
// over a real TCP store and Gloo on loopback.
#include "genmodels/train/distributed.h"

#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "genmodels/core/error.h"
#include "genmodels/core/launch.h"

namespace {

using gm::train::dist::Env;
using gm::train::dist::GradientReducer;
using gm::train::dist::Group;

// Runs body(group) on `world` ranks, one thread each (grad mode is per thread: each enables it).
void on_ranks(int world, const std::function<void(Group&)>& body) {
  const int port = gm::free_local_port();
  std::vector<std::thread> threads;
  std::vector<std::string> errors(world);
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        torch::AutoGradMode grad(true);
        Env env;
        env.rank = r;
        env.world_size = world;
        env.master_port = port;
        auto g = Group::join(env, 30);
        body(*g);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

}  // namespace

TEST(Distributed, CollectivesAgree) {
  std::vector<torch::Tensor> gathered(2), summed(2), maxed(2), cast(2);
  on_ranks(2, [&](Group& g) {
    const double r = g.rank();
    torch::Tensor s = torch::tensor({1.0 + r, 10.0 * r});
    g.all_reduce(s);
    torch::Tensor m = torch::tensor({r, -r}, torch::kFloat64);
    g.all_reduce(m, /*max=*/true);
    torch::Tensor b = torch::full({3}, r + 5);
    g.broadcast({b}, /*root=*/1);
    summed[g.rank()] = s;
    maxed[g.rank()] = m;
    cast[g.rank()] = b;
    gathered[g.rank()] = g.all_gather(torch::full({2}, static_cast<int64_t>(7 * r), torch::kUInt8));
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(torch::equal(summed[r], torch::tensor({3.0f, 10.0f}))) << summed[r];
    EXPECT_TRUE(torch::equal(maxed[r], torch::tensor({1.0, 0.0}, torch::kFloat64)));
    EXPECT_TRUE(torch::equal(cast[r], torch::full({3}, 6.0f)));
    EXPECT_TRUE(torch::equal(gathered[r], torch::tensor({{0, 0}, {7, 7}}, torch::kUInt8)));
  }
}

// Each rank's half-batch gradients, averaged by the reducer, equal the full batch's gradients;
// small buckets make the hooks start all-reduces during backward; a parameter the loss never
// reaches gets a zero gradient on every rank.
TEST(Distributed, ReducerAveragesGradientsOverRanks) {
  torch::manual_seed(0);
  torch::nn::Sequential ref(torch::nn::Linear(6, 16), torch::nn::Tanh(), torch::nn::Linear(16, 3));
  const torch::Tensor x = torch::randn({8, 6}), y = torch::randn({8, 3});
  torch::mse_loss(ref->forward(x), y).backward();

  std::vector<std::vector<torch::Tensor>> grads(2);
  std::vector<int64_t> buckets(2);
  on_ranks(2, [&](Group& g) {
    torch::nn::Sequential net(torch::nn::Linear(6, 16), torch::nn::Tanh(),
                              torch::nn::Linear(16, 3));
    torch::nn::Linear unused(2, 2);
    {
      torch::NoGradGuard no_grad;
      auto src = ref->parameters(), dst = net->parameters();
      for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
    }
    // The unused parameter comes first: its bucket is the last one, started by finish().
    auto params = unused->parameters();
    for (const auto& p : net->parameters()) params.push_back(p);
    GradientReducer reducer(g, params, /*bucket_bytes=*/64);
    buckets[g.rank()] = reducer.buckets();
    const auto half = torch::indexing::Slice(4 * g.rank(), 4 * g.rank() + 4);
    for (int step = 0; step < 2; ++step) {  // twice: the reducer re-arms
      for (auto& p : params) p.mutable_grad() = torch::Tensor();
      reducer.prepare();
      torch::mse_loss(net->forward(x.index({half})), y.index({half})).backward();
      reducer.finish();
    }
    for (const auto& p : params) grads[g.rank()].push_back(p.grad().clone());
  });
  EXPECT_GT(buckets[0], 2);
  const auto want = ref->parameters();
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(grads[r].size(), want.size() + 2);
    EXPECT_EQ(grads[r][0].abs().sum().item<float>(), 0.0f);
    EXPECT_EQ(grads[r][1].abs().sum().item<float>(), 0.0f);
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_TRUE(torch::allclose(grads[r][i + 2], want[i].grad(), 1e-5, 1e-6)) << "rank " << r;
      EXPECT_TRUE(torch::equal(grads[r][i + 2], grads[0][i + 2]));  // bit-identical on the ranks
    }
  }
}

TEST(Distributed, EnvironmentErrorsNameTheVariable) {
  ::setenv("WORLD_SIZE", "2", 1);
  ::setenv("RANK", "2", 1);
  try {
    Env::from_environment();
    ADD_FAILURE() << "RANK outside the world accepted";
  } catch (const gm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("RANK=2"), std::string::npos) << e.what();
  }
  ::setenv("RANK", "one", 1);
  EXPECT_THROW(Env::from_environment(), gm::Error);
  ::unsetenv("RANK");
  ::unsetenv("WORLD_SIZE");
  EXPECT_EQ(Env::from_environment().world_size, 1);
}
