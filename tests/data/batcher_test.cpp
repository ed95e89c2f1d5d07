// Tests for the seeded, resumable Batcher.
#include <gtest/gtest.h>

#include <set>

#include "genmodels/core/error.h"
#include "genmodels/data/dataset.h"

namespace {

// Example i has x filled with i (toy-like N x 2) and label i % 3.
gm::data::Dataset indexed(int64_t n) {
  gm::data::Dataset d;
  d.name = "indexed";
  d.x = torch::arange(n, torch::kFloat32).unsqueeze(1).repeat({1, 2});
  d.y = torch::arange(n, torch::kLong) % 3;
  return d;
}

std::vector<int64_t> ids(const gm::data::Batcher::Batch& b) {
  torch::Tensor c = b.x.select(1, 0).to(torch::kLong);
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

TEST(Batcher, SameSeedSameBatches) {
  gm::data::Dataset d = indexed(103);
  gm::data::Batcher a(d, 10, 42), b(d, 10, 42), c(d, 10, 43);
  bool differs = false;
  for (int i = 0; i < 25; ++i) {
    auto ba = a.next(), bb = b.next(), bc = c.next();
    EXPECT_TRUE(torch::equal(ba.x, bb.x));
    EXPECT_TRUE(torch::equal(ba.y, bb.y));
    EXPECT_EQ(ba.x.size(0), 10);
    EXPECT_TRUE(torch::equal(ba.y, torch::tensor(ids(ba)) % 3));
    if (!torch::equal(ba.x, bc.x)) differs = true;
  }
  EXPECT_TRUE(differs);
}

TEST(Batcher, EachEpochIsAPermutationWithDropLast) {
  gm::data::Dataset d = indexed(50);
  gm::data::Batcher b(d, 8, 1);  // 6 full batches per epoch, 2 examples dropped
  EXPECT_EQ(b.batches_per_epoch(), 6);
  std::vector<int64_t> first_epoch;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::set<int64_t> seen;
    std::vector<int64_t> order;
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ(b.epoch(), epoch);
      EXPECT_EQ(b.position(), i * 8);
      for (int64_t id : ids(b.next())) {
        EXPECT_TRUE(seen.insert(id).second) << "index " << id << " repeated in epoch " << epoch;
        order.push_back(id);
      }
    }
    EXPECT_EQ(seen.size(), 48u);
    if (epoch == 0) first_epoch = order;
    if (epoch == 1) {
      EXPECT_NE(order, first_epoch);
    }
  }
  EXPECT_EQ(b.epoch(), 3);
  EXPECT_EQ(b.position(), 0);
}

TEST(Batcher, ResumeContinuesExactly) {
  gm::data::Dataset d = indexed(37);
  gm::data::Batcher full(d, 5, 9);
  std::vector<std::vector<int64_t>> ref;
  for (int i = 0; i < 40; ++i) ref.push_back(ids(full.next()));
  for (int stop : {0, 3, 7, 8, 21}) {
    gm::data::Batcher first(d, 5, 9);
    for (int i = 0; i < stop; ++i) first.next();
    gm::data::Batcher resumed(d, 5, 9);
    resumed.set_state(first.epoch(), first.position());
    for (int i = stop; i < 40; ++i) ASSERT_EQ(ids(resumed.next()), ref[i]) << "stop " << stop;
  }
  gm::data::Batcher b(d, 5, 9);
  EXPECT_THROW(b.set_state(-1, 0), gm::Error);
  EXPECT_THROW(b.set_state(0, 38), gm::Error);
}

TEST(Batcher, HflipFlipsAboutHalf) {
  // Images whose left half is -1 and right half +1, so a flip is visible.
  gm::data::Dataset d;
  d.name = "halves";
  d.x = torch::cat({-torch::ones({400, 1, 2, 2}), torch::ones({400, 1, 2, 2})}, 3);
  d.y = torch::zeros({400}, torch::kLong);
  gm::data::Batcher b(d, 100, 3, true), again(d, 100, 3, true);
  int64_t flipped = 0;
  for (int i = 0; i < 4; ++i) {
    auto batch = b.next();
    EXPECT_TRUE(torch::equal(batch.x, again.next().x));
    flipped += (batch.x.select(3, 0).reshape({100, -1}).mean(1) > 0).sum().item<int64_t>();
  }
  EXPECT_GT(flipped, 150);
  EXPECT_LT(flipped, 250);
  gm::data::Batcher none(d, 100, 3, false);
  EXPECT_TRUE(torch::equal(none.next().x.select(3, 0), -torch::ones({100, 1, 2})));
}

TEST(Batcher, RejectsBadBatchSize) {
  gm::data::Dataset d = indexed(4);
  EXPECT_THROW(gm::data::Batcher(d, 5, 0), gm::Error);
  EXPECT_THROW(gm::data::Batcher(d, 0, 0), gm::Error);
}

}  // namespace

// Data-parallel shards: the ranks' slices of a step, side by side, are the one-process batch;
// the state (epoch, position) is the global one, so any world size resumes any other's.
TEST(Batcher, ShardsSplitTheGlobalBatch) {
  gm::data::Dataset d = indexed(103);
  gm::data::Batcher whole(d, 12, 7);
  std::vector<gm::data::Batcher> ranks;
  for (int r = 0; r < 3; ++r) {
    ranks.emplace_back(d, 12, 7);
    ranks.back().shard(r, 3);
    EXPECT_EQ(ranks.back().local_batch_size(), 4);
  }
  for (int step = 0; step < 20; ++step) {  // crosses two epoch boundaries (8 batches each)
    std::vector<int64_t> joined;
    for (auto& b : ranks) {
      const auto part = ids(b.next());
      EXPECT_EQ(part.size(), 4u);
      joined.insert(joined.end(), part.begin(), part.end());
    }
    EXPECT_EQ(joined, ids(whole.next())) << "step " << step;
    EXPECT_EQ(ranks[2].epoch(), whole.epoch());
    EXPECT_EQ(ranks[2].position(), whole.position());
  }
  gm::data::Batcher odd(d, 10, 7);
  try {
    odd.shard(0, 4);
    ADD_FAILURE() << "a batch of 10 split over 4 ranks";
  } catch (const gm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.batch_size = 10"), std::string::npos) << e.what();
  }
}
