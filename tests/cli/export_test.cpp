// Weights interop end to end (issue #20): a tiny ddpm U-Net trained on Fashion-MNIST is exported
// as safetensors, imported back into a new run and sampled (the same images), used as --init of a
// training run, and read in Python into the PyTorch twin of the U-Net (the same outputs).
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_util.h"
#include "genmodels/core/atomic_file.h"
#include "genmodels/core/json.h"
#include "genmodels/io/npy.h"
#include "genmodels/io/safetensors.h"
#include "genmodels/models/run.h"
#include "genmodels/score/denoiser_model.h"

namespace {
namespace fs = std::filesystem;
using namespace gm::test::cli;

// The cheapest U-Net run: 64 images at 14x14, 16 channels at two levels, 4 steps (with a high
// LR, so that the zero-initialised output convolutions move off zero); previews of 2 DDIM steps.
const std::string kTinyUnet =
    " --data fashion-mnist --seed 1 --threads 2 --set data.limit=64"
    " --set data.image_size=14 --set model.base_channels=16 --set model.channel_mult=1,1"
    " --set model.attention_levels= --set model.heads=2 --set train.batch_size=16"
    " --set train.lr=1e-2 --set train.warmup_steps=0 --set train.ema_decay=0.5"
    " --set train.eval_every=0 --set diffusion.timesteps=20 --set sample.sampler=ddim"
    " --set sample.steps=2";

bool have_fashion_mnist() {
  return fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
}

std::string train_tiny(const std::string& name) {
  const std::string run = fresh(name);
  Result r = cli("train ddpm" + kTinyUnet + " --steps 4 --out " + run);
  EXPECT_EQ(r.status, 0) << r.err;
  return run;
}

std::string slurp(const std::string& path) { return gm::read_file(path); }

// `sample` of `run` with a fixed seed, as .npy bytes.
std::string sample_npy(const std::string& run, const std::string& out, const std::string& extra) {
  Result r = cli("sample " + run + " --n 10 --seed 7 --sampler ddim --steps 3 --threads 2 --out " +
                 out + " --npy " + out + "/s.npy" + extra);
  EXPECT_EQ(r.status, 0) << r.err;
  return r.status == 0 ? slurp(out + "/s.npy") : "";
}

TEST(Export, ImportedRunSamplesTheSameAndInitsTraining) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const std::string run = train_tiny("exp_run"), exp = fresh("exp_ema"), dir = fresh("exp_misc");
  fs::create_directories(dir);

  // export --ema to a directory; the raw weights to RUN/export.
  Result e = cli("export " + run + " --format safetensors --ema --out " + exp);
  ASSERT_EQ(e.status, 0) << e.err;
  EXPECT_EQ(e.out, exp + "/model.safetensors\n");
  ASSERT_EQ(cli("export " + run).status, 0);
  const gm::Json cfg = gm::Json::parse(slurp(exp + "/config.json"));
  EXPECT_EQ(cfg["model"], "ddpm");
  EXPECT_EQ(cfg["ema"], true);
  EXPECT_EQ(cfg["config"]["model.base_channels"], 16);
  EXPECT_EQ(cfg["data"]["shape"], gm::Json::array({1, 14, 14}));
  const auto ema = gm::io::read_safetensors(exp + "/model.safetensors");
  const auto raw = gm::io::read_safetensors(run + "/export/model.safetensors");
  EXPECT_EQ(ema.metadata.at("genmodels.weights"), "ema");
  ASSERT_NE(ema.find("unet.conv_in.weight"), nullptr);
  ASSERT_EQ(ema.tensors.size(), raw.tensors.size());
  EXPECT_FALSE(torch::equal(*ema.find("unet.conv_out.weight"), *raw.find("unet.conv_out.weight")));

  // import -> a run that samples exactly as the original: EMA weights, and raw ones.
  const std::string imp = fresh("exp_imp"), imp_raw = fresh("exp_imp_raw");
  Result i = cli("import " + exp + "/model.safetensors --out " + imp);
  ASSERT_EQ(i.status, 0) << i.err;
  EXPECT_EQ(i.out, imp + "\n");
  ASSERT_EQ(cli("import " + run + "/export/model.safetensors --out " + imp_raw).status, 0);
  const std::string a = sample_npy(run, dir + "/a", ""), b = sample_npy(imp, dir + "/b", "");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  const std::string c = sample_npy(run, dir + "/c", " --raw-weights");
  EXPECT_EQ(c, sample_npy(imp_raw, dir + "/d", ""));
  EXPECT_NE(a, c);
  // Classes too: the imported run is class-conditional like the original.
  EXPECT_EQ(slurp(dir + "/a/s.labels.npy"), slurp(dir + "/b/s.labels.npy"));

  // train --init: the weights the first step starts from are the file's (a vanishing LR keeps
  // them, so the new run's raw export equals the file).
  const std::string init_run = fresh("exp_init");
  Result t = cli("train ddpm" + kTinyUnet + " --steps 1 --set train.lr=1e-30 --init " + exp +
                 "/model.safetensors --out " + init_run);
  ASSERT_EQ(t.status, 0) << t.err;
  ASSERT_EQ(cli("export " + init_run + " --out " + dir + "/init").status, 0);
  const auto inited = gm::io::read_safetensors(dir + "/init/model.safetensors");
  ASSERT_EQ(inited.tensors.size(), ema.tensors.size());
  for (const auto& [name, tensor] : ema.tensors)
    EXPECT_TRUE(torch::allclose(*inited.find(name), tensor, 0, 1e-6)) << name;

  // Errors: one line naming the file and the tensor.
  expect_error("export " + imp + " --ema", "has no EMA weights");
  expect_error("export " + run + " --format onnx", "--format");
  expect_error("import " + exp + "/model.safetensors --out " + imp, "already holds a run");
  gm::write_file_atomic(dir + "/lonely.safetensors", slurp(exp + "/model.safetensors"));
  expect_error("import " + dir + "/lonely.safetensors --out " + dir + "/x", "config.json");
  gm::Json small = cfg;
  small["config"]["model.base_channels"] = 8;
  gm::write_file_atomic(dir + "/small.json", small.dump());
  expect_error("import " + exp + "/model.safetensors --config-json " + dir + "/small.json --out " +
                   dir + "/x",
               "tensor 'unet.time_embed.0.weight' has shape [64, 16], the model's is [32, 8]");
  gm::Json bad_key = cfg;
  bad_key["config"]["model.width_typo"] = 3;
  gm::write_file_atomic(dir + "/bad_key.json", bad_key.dump());
  expect_error("import " + exp + "/model.safetensors --config-json " + dir +
                   "/bad_key.json --out " + dir + "/x",
               "unknown key 'model.width_typo'");
  // A file with one tensor too many, and one with a tensor missing.
  std::vector<gm::io::NamedTensor> more = ema.tensors, fewer = ema.tensors;
  more.push_back({"unet.extra.weight", torch::zeros({2})});
  fewer.erase(fewer.begin());
  gm::io::write_safetensors(dir + "/more.safetensors", more);
  gm::io::write_safetensors(dir + "/fewer.safetensors", fewer);
  const std::string cj = " --config-json " + exp + "/config.json --out " + dir + "/x";
  expect_error("import " + dir + "/more.safetensors" + cj, "tensor 'unet.extra.weight' is not");
  expect_error("import " + dir + "/fewer.safetensors" + cj,
               "has no tensor '" + ema.tensors.front().name + "'");
  expect_error("train ddpm --data moons --steps 1 --init " + dir + "/fewer.safetensors --out " +
                   dir + "/toy",
               "has no tensor 'mlp.");
  expect_error("train --resume --out " + run + " --init " + exp + "/model.safetensors",
               "--init " + exp + "/model.safetensors starts a fresh run");
  // A corrupt file is the reader's error.
  gm::write_file_atomic(dir + "/cut.safetensors", slurp(exp + "/model.safetensors").substr(0, 99));
  expect_error("import " + dir + "/cut.safetensors" + cj, "cut.safetensors: safetensors header");
  EXPECT_FALSE(fs::exists(dir + "/x"));
}

// The exported file in Python: parsed by the spec with numpy, loaded into the PyTorch twin of
// the U-Net (bench/unet_reference.py), the same outputs as the C++ network to 1e-5.
TEST(Export, PythonTwinLoadsTheFileAndMatches) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  if (shell("/usr/bin/python3 -c 'import numpy, torch'").status != 0)
    GTEST_SKIP() << "/usr/bin/python3 with numpy and torch is not installed";
  const std::string run = train_tiny("twin_run"), exp = fresh("twin_exp");
  ASSERT_EQ(cli("export " + run + " --ema --out " + exp).status, 0);

  // The C++ network (the EMA weights `sample` uses) on a fixed input, every class and the null.
  std::unique_ptr<gm::Model> model = gm::load_trained_model(run);
  auto& net = dynamic_cast<gm::score::DenoiserNetImpl&>(model->module());
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({11, 1, 14, 14});
  const torch::Tensor t = torch::linspace(0, 19, 11);
  const torch::Tensor y = torch::arange(0, 11, torch::kInt64);  // 10 = the null class
  torch::Tensor out;
  {
    torch::NoGradGuard no_grad;
    out = net.forward(x, t, y).contiguous();
  }
  EXPECT_GT(out.abs().max().item<float>(), 1e-2) << "a trivial output would prove nothing";
  const std::string check = exp + "/check";
  fs::create_directories(check);
  gm::io::write_npy(check + "/x.npy", x);
  gm::io::write_npy(check + "/t.npy", t);
  gm::io::write_npy(check + "/y.npy", y);
  gm::io::write_npy(check + "/out.npy", out);
  Result py = shell("/usr/bin/python3 " + std::string(GM_SOURCE_DIR) +
                    "/tests/cli/safetensors_twin.py " + exp + " " + check + " " + GM_SOURCE_DIR);
  EXPECT_EQ(py.status, 0) << py.out << py.err;
  EXPECT_NE(py.out.find("max |out - C++|"), std::string::npos) << py.out << py.err;
  std::cout << py.out;
}

}  // namespace
