// Every PNG says how to draw it again: `genmodels info` prints its parameters and
// `genmodels sample --from IMG.png` regenerates it byte for byte (grids and single images,
// also after the run has trained on, from the kept checkpoint of the image's step).
#include <gtest/gtest.h>

#include <filesystem>

#include "cli/cli_util.h"
#include "genmodels/core/atomic_file.h"
#include "genmodels/io/image.h"

namespace fs = std::filesystem;
using namespace gm::test::cli;

TEST(Reproducible, SampleFromPngRegeneratesItByteForByte) {
  const std::string run = fresh("repro");
  const std::string tiny =
      " --data fashion-mnist --set data.limit=64 --set model.base_channels=8"
      " --set model.attention_levels= --set train.batch_size=16 --set train.keep_checkpoints=3 "
      "--set sample.steps=2"
      " --set train.checkpoint_every=2 --seed 3 --out " +
      run;
  ASSERT_EQ(cli("train ddpm --steps 2" + tiny).status, 0);
  Result s = cli("sample " + run + " --n 5 --seed 9 --sampler euler_a --steps 3 --guidance 2" +
                 " --singles --out " + run + "/s");
  ASSERT_EQ(s.status, 0) << s.err;

  auto text = gm::io::read_png_text(run + "/s/000003.png");
  EXPECT_EQ(text["parameters"], "genmodels sample " + run +
                                    " --n 5 --seed 9 --set sample.sampler=euler_a "
                                    "--set sample.steps=3 --set sample.guidance=2");
  EXPECT_EQ(text["index"], "3");
  EXPECT_EQ(text["checkpoint_step"], "2");
  EXPECT_EQ(text["Software"].rfind("genmodels ", 0), 0u);
  Result info = cli("info " + run + "/s/000003.png");
  ASSERT_EQ(info.status, 0) << info.err;
  EXPECT_EQ(info.out.rfind("parameters: genmodels sample " + run, 0), 0u) << info.out;
  EXPECT_NE(info.out.find("\nindex: 3\n"), std::string::npos) << info.out;

  // Train on: the run's checkpoint moves to step 6, the images come from the kept step 2.
  ASSERT_EQ(cli("train ddpm --steps 6 --resume" + tiny).status, 0);
  for (const std::string name : {"grid.png", "000003.png", "000000.png"}) {
    Result r = cli("sample --from " + run + "/s/" + name + " --out " + run + "/again");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto a = gm::io::read_image(run + "/s/" + name),
               b = gm::io::read_image(run + "/again/" + name);
    EXPECT_TRUE(torch::equal(a, b)) << name;
  }
  // Before training on, the same command reproduces the bytes (the run path in the chunks too).
  const std::string run2 = fresh("repro2");
  ASSERT_EQ(cli("train ddpm --steps 2 --data fashion-mnist --set data.limit=64 "
                "--set model.base_channels=8 --set model.attention_levels= "
                "--set train.batch_size=16 --set sample.steps=2 --out " +
                run2)
                .status,
            0);
  ASSERT_EQ(
      cli("sample " + run2 + " --n 4 --seed 1 --steps 2 --singles --out " + run2 + "/s").status, 0);
  for (const std::string name : {"grid.png", "000002.png"}) {
    Result r = cli("sample --from " + run2 + "/s/" + name);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(gm::read_file(run2 + "/s/regenerated/" + name), gm::read_file(run2 + "/s/" + name))
        << name;
  }

  // --quiet: the regeneration draws no progress bar and says nothing.
  Result q = cli("sample --quiet --from " + run2 + "/s/000002.png --out " + run2 + "/q");
  EXPECT_EQ(q.status, 0) << q.err;
  EXPECT_EQ(q.err, "");
  EXPECT_EQ(gm::read_file(run2 + "/q/000002.png"), gm::read_file(run2 + "/s/000002.png"));

  // Images without parameters, and runs that trained on without keeping the step.
  gm::io::write_png(run2 + "/plain.png", torch::zeros({4, 4}, torch::kUInt8));
  expect_error("info " + run2 + "/plain.png", "no generation parameters");
  expect_error("sample --from " + run2 + "/plain.png", "no 'parameters' chunk");
  expect_error("sample --from " + run2 + "/s/grid.png " + run2, "takes its run from the image");
  ASSERT_EQ(cli("train ddpm --steps 3 --resume --out " + run2).status, 0);
  expect_error("sample --from " + run2 + "/s/grid.png", "keeps no step 2");
}
