// The pieces of image-to-image translation: Sobel edge maps (by hand and by definition), two-domain
// data (side-by-side and two-folder pairs, unpaired domains) and their one-line errors, the image
// history pool's exact draws, the translation networks' shapes and patch sizes, the linear LR.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "genmodels/data/paired.h"
#include "genmodels/gan/image_pool.h"
#include "genmodels/gan/translation_nets.h"
#include "genmodels/io/image.h"
#include "genmodels/train/lr_schedule.h"
#include "test_util.h"

namespace {

// A [0, 1] image as the [-1, 1] tensor the data layer holds.
torch::Tensor image01(const std::vector<float>& v, int64_t h, int64_t w) {
  return torch::tensor(v).view({1, 1, h, w}) * 2 - 1;
}

void write_png01(const std::string& path, const torch::Tensor& img01_hw) {
  gm::io::write_png(path, (img01_hw * 255).round().to(torch::kUInt8).contiguous());
}

}  // namespace

TEST(Translation, SobelEdgesOfOneBrightPixelByHand) {
  // One bright pixel at the centre of a 5x5 image: the Sobel responses around it are
  // |(gx, gy)| = 2 at the four side neighbours and sqrt(2) at the corners, 0 elsewhere; half the
  // maximum is 1, so exactly the 8 neighbours are edges.
  std::vector<float> v(25, 0.f);
  v[12] = 1.f;
  const torch::Tensor e = gm::data::sobel_edges(image01(v, 5, 5))[0][0];
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t c = 0; c < 5; ++c) {
      const bool ring = std::abs(r - 2) <= 1 && std::abs(c - 2) <= 1 && !(r == 2 && c == 2);
      EXPECT_EQ(e[r][c].item<float>(), ring ? 1.f : -1.f) << r << "," << c;
    }
  // A blank image has no edges.
  EXPECT_TRUE(
      torch::all(gm::data::sobel_edges(torch::full({2, 1, 4, 4}, -1.f)) == -1.f).item<bool>());
}

TEST(Translation, SobelEdgesMatchTheirDefinition) {
  torch::manual_seed(3);
  const torch::Tensor x = torch::rand({2, 1, 6, 7}) * 2 - 1;
  const torch::Tensor e = gm::data::sobel_edges(x);
  const int kx[3][3] = {{-1, 0, 1}, {-2, 0, 2}, {-1, 0, 1}};
  for (int64_t n = 0; n < 2; ++n) {
    auto img = ((x[n][0] + 1) * 0.5).contiguous();
    auto a = img.accessor<float, 2>();
    std::vector<double> mag(6 * 7);
    double peak = 0;
    for (int r = 0; r < 6; ++r)
      for (int c = 0; c < 7; ++c) {
        double gx = 0, gy = 0;
        for (int i = -1; i <= 1; ++i)
          for (int j = -1; j <= 1; ++j) {
            const int rr = r + i, cc = c + j;
            const double p = rr < 0 || rr >= 6 || cc < 0 || cc >= 7 ? 0.0 : a[rr][cc];
            gx += kx[i + 1][j + 1] * p;
            gy += kx[j + 1][i + 1] * p;
          }
        mag[r * 7 + c] = std::hypot(gx, gy);
        peak = std::max(peak, mag[r * 7 + c]);
      }
    for (int r = 0; r < 6; ++r)
      for (int c = 0; c < 7; ++c)
        EXPECT_EQ(e[n][0][r][c].item<float>(), mag[r * 7 + c] >= 0.5 * peak - 1e-6 ? 1.f : -1.f);
  }
}

TEST(Translation, SideBySideAndTwoFolderPairs) {
  gm::test::TempDir tmp;
  const std::string dir = tmp.file("sbs");
  std::filesystem::create_directories(dir);
  // Two 4x8 A|B images: A = 0.2 everywhere, B = 0.8 (image 0) / A = 0.4, B = 0.6 (image 1).
  for (int i = 0; i < 2; ++i) {
    torch::Tensor img = torch::empty({4, 8});
    img.narrow(1, 0, 4).fill_(i == 0 ? 0.2 : 0.4);
    img.narrow(1, 4, 4).fill_(i == 0 ? 0.8 : 0.6);
    write_png01(dir + "/img" + std::to_string(i) + ".png", img);
  }
  gm::data::DataOptions o;
  const gm::data::Dataset d = gm::data::load_dataset("paired:" + dir, o);
  ASSERT_EQ(d.channels_a, 1);
  ASSERT_EQ(d.x.sizes(), torch::IntArrayRef({2, 2, 4, 4}));
  EXPECT_NEAR(d.x[0][0].mean().item<double>(), 0.2 * 2 - 1, 0.01);
  EXPECT_NEAR(d.x[0][1].mean().item<double>(), 0.8 * 2 - 1, 0.01);
  EXPECT_NEAR(d.x[1][1].mean().item<double>(), 0.6 * 2 - 1, 0.01);

  // An odd width is named.
  write_png01(dir + "/odd.png", torch::zeros({4, 7}));
  std::string m = gm::test::error_of([&] { gm::data::load_dataset("paired:" + dir, o); });
  EXPECT_NE(m.find("odd.png"), std::string::npos) << m;
  EXPECT_NE(m.find("even width"), std::string::npos) << m;

  // Two folders pair by name; a file without its partner is named.
  const std::string a = tmp.file("A"), b = tmp.file("B");
  std::filesystem::create_directories(a);
  std::filesystem::create_directories(b);
  for (const char* n : {"x.png", "y.png"}) {
    write_png01(a + "/" + n, torch::full({4, 4}, 0.25));
    write_png01(b + "/" + n, torch::full({4, 4}, 0.75));
  }
  const gm::data::Dataset two = gm::data::load_dataset("paired:" + a + "," + b, o);
  EXPECT_EQ(two.size(), 2);
  EXPECT_NEAR(two.x.select(1, 1).mean().item<double>(), 0.5, 0.01);
  write_png01(a + "/z.png", torch::zeros({4, 4}));
  m = gm::test::error_of([&] { gm::data::load_dataset("paired:" + a + "," + b, o); });
  EXPECT_NE(m.find("z.png has no partner"), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos);
}

TEST(Translation, UnpairedDomainsAndTheirErrors) {
  gm::data::Dataset a, b;
  a.name = "A";
  a.x = torch::zeros({3, 1, 4, 4});
  a.y = torch::zeros({3}, torch::kInt64);
  b.name = "B";
  b.x = torch::ones({5, 1, 4, 4});
  b.y = torch::zeros({5}, torch::kInt64);
  const gm::data::Dataset u = gm::data::make_unpaired(a, b, 7);
  EXPECT_EQ(u.size(), 5);
  EXPECT_EQ(u.channels_a, 1);
  EXPECT_TRUE(torch::all(u.x.select(1, 0) == 0).item<bool>());
  EXPECT_TRUE(torch::all(u.x.select(1, 1) == 1).item<bool>());
  gm::data::Dataset rgb = b;
  rgb.x = torch::ones({5, 3, 4, 4});
  EXPECT_NE(gm::test::error_of([&] { gm::data::make_unpaired(a, rgb, 7); }).find("channels"),
            std::string::npos);
  gm::data::Dataset empty = b;
  empty.x = torch::zeros({0, 1, 4, 4});
  EXPECT_NE(gm::test::error_of([&] { gm::data::make_unpaired(a, empty, 7); }).find("is empty"),
            std::string::npos);
}

TEST(Translation, ImagePoolSwapsHalfOnceFullWithExactDraws) {
  gm::gan::ImagePool pool(4, std::vector<int64_t>{1, 2, 2});
  // Image k is filled with the value k, so every returned image names where it came from.
  auto batch = [](int64_t first, int64_t n) {
    return torch::arange(first, first + n, torch::kFloat).view({n, 1, 1, 1}).expand({n, 1, 2, 2});
  };
  torch::manual_seed(11);
  torch::Tensor out = pool->query(batch(0, 4));  // filling: returned as is
  EXPECT_TRUE(torch::equal(out, batch(0, 4).contiguous()));
  EXPECT_EQ(pool->size(), 4);
  // Once full: replicate the pool's draws (uniforms, then slots) to predict every output.
  std::vector<float> stored = {0, 1, 2, 3};
  int64_t swapped = 0, total = 0;
  for (int call = 0; call < 50; ++call) {
    const int64_t first = 100 + call * 8;
    torch::manual_seed(100 + call);
    const torch::Tensor u = torch::rand({8});
    const torch::Tensor slot = torch::randint(0, 4, {8}, torch::kInt64);
    torch::manual_seed(100 + call);
    out = pool->query(batch(first, 8));
    for (int64_t i = 0; i < 8; ++i) {
      const float got = out[i][0][0][0].item<float>();
      if (u[i].item<float>() > 0.5f) {
        const int64_t s = slot[i].item<int64_t>();
        EXPECT_EQ(got, stored[s]);
        stored[s] = static_cast<float>(first + i);
        ++swapped;
      } else {
        EXPECT_EQ(got, static_cast<float>(first + i));
      }
      ++total;
    }
  }
  const double share = static_cast<double>(swapped) / total;
  EXPECT_GT(share, 0.4);
  EXPECT_LT(share, 0.6);
  // The pool is module state: it is in the checkpointed buffers.
  int buffers = 0;
  for (const auto& b : pool->named_buffers()) buffers += b.key() == "images" || b.key() == "count";
  EXPECT_EQ(buffers, 2);
}

TEST(Translation, NetworkShapesAndPatchSizes) {
  EXPECT_EQ(gm::gan::patch_receptive_field(3), 70);  // the paper's 70x70 PatchGAN
  EXPECT_EQ(gm::gan::patch_receptive_field(1), 16);
  EXPECT_EQ(gm::gan::patch_layers_for(256), 3);
  EXPECT_EQ(gm::gan::patch_layers_for(28), 1);
  for (int64_t size : {28, 32}) {
    gm::gan::UnetOptions u;
    u.in_channels = 1;
    u.out_channels = 3;
    u.size = size;
    u.channels = 8;
    gm::gan::UnetGenerator g(u);
    const torch::Tensor x = torch::randn({2, 1, size, size});
    EXPECT_EQ(g->forward(x).sizes(), torch::IntArrayRef({2, 3, size, size}));
    // Residual blocks at the bottleneck (model.g_blocks): registered, and the output keeps its
    // shape.
    u.blocks = 2;
    gm::gan::UnetGenerator gb(u);
    EXPECT_EQ(gb->forward(x).sizes(), torch::IntArrayRef({2, 3, size, size}));
    EXPECT_EQ(gb->named_children().contains("mid_block1"), size == 28) << size;
    gm::gan::ResnetOptions r;
    r.size = size;
    r.channels = 4;
    r.blocks = 2;
    EXPECT_EQ(gm::gan::ResnetGenerator(r)->forward(x).sizes(), x.sizes());
    gm::gan::PatchOptions p;
    p.in_channels = 1;
    p.channels = 8;
    p.layers = gm::gan::patch_layers_for(size);
    const torch::Tensor s = gm::gan::PatchDiscriminator(p)->forward(x);
    EXPECT_EQ(s.size(1), 1);
    EXPECT_GT(s.size(2), 1);  // a map of patch scores, not one score
  }
  gm::gan::UnetOptions odd;
  odd.size = 27;
  EXPECT_NE(gm::test::error_of([&] { gm::gan::UnetGenerator g(odd); }).find("even image size"),
            std::string::npos);
}

TEST(Translation, LinearScheduleHoldsThenDecays) {
  gm::train::LrSchedule s;
  s.lr = 2e-4;
  s.kind = "linear";
  EXPECT_DOUBLE_EQ(s.at(10, 0.25), 2e-4);
  EXPECT_DOUBLE_EQ(s.at(10, 0.5), 2e-4);
  EXPECT_NEAR(s.at(10, 0.75), 1e-4, 1e-12);
  EXPECT_NEAR(s.at(10, 1.0), 0.0, 1e-12);
}
