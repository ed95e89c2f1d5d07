// The registry's configuration contract: every model's keys come from bound options structs,
// shared keys take the model's own defaults, and `genmodels config MODEL` reproduces them.
#include "genmodels/models/registry.h"

#include <gtest/gtest.h>

#include "genmodels/models/run.h"

TEST(Registry, DefaultConfigRoundTripsForEveryModel) {
  for (const auto& entry : gm::model_registry()) {
    const gm::Config defaults = gm::make_config(entry);
    const std::string text = gm::default_config(entry.name);
    gm::Config back = gm::make_config(entry);
    back.set("train.steps", "7");  // anything the file must put back
    back.load_toml_string(text, entry.name);
    EXPECT_EQ(back.to_toml(), defaults.to_toml()) << entry.name;
    // One comment line above each key.
    for (const auto& key : defaults.schema()) {
      const std::string leaf = key.name.substr(key.name.rfind('.') + 1);
      EXPECT_NE(text.find("# " + key.doc.substr(0, 20)), std::string::npos)
          << entry.name << " " << key.name;
      EXPECT_NE(text.find("\n" + leaf + " = "), std::string::npos) << entry.name << " " << leaf;
    }
    for (const auto& [key, value] : entry.defaults) {
      gm::Config c(defaults.schema());
      c.set(key, value);
      EXPECT_EQ(defaults.get_string(key), c.get_string(key)) << entry.name << " " << key;
    }
  }
  // Shared keys carry the model's defaults (ddpm trains at lr 1e-3, the trainer's default is 2e-4).
  EXPECT_EQ(gm::make_config(gm::find_model("ddpm")).get_float("train.lr"), 1e-3);
  EXPECT_EQ(gm::make_config(gm::find_model("lda")).get_float("train.lr"), 2e-4);
  EXPECT_EQ(gm::make_config(gm::find_model("glow")).get_float("model.logit_alpha"), 0.001);
  EXPECT_EQ(gm::make_config(gm::find_model("realnvp")).get_float("model.logit_alpha"), 0.05);
  EXPECT_EQ(gm::make_config(gm::find_model("glow")).get_int("model.res_blocks"), 0);
}

// A run stored before a key existed loads with the value it was trained with, not the new default;
// a stored value always wins.
TEST(Registry, StoredRunsWithoutANewKeyKeepTheirBehaviour) {
  const gm::ModelEntry& vae = gm::find_model("vae");
  EXPECT_TRUE(gm::make_config(vae).get_bool("model.conditional"));
  EXPECT_FALSE(
      gm::make_run_config(vae, "[model]\nlatent = 4\n", "old").get_bool("model.conditional"));
  EXPECT_EQ(gm::make_run_config(vae, "[model]\nlatent = 4\n", "old").get_int("model.latent"), 4);
  EXPECT_TRUE(gm::make_run_config(vae, "[model]\nconditional = true\n", "new")
                  .get_bool("model.conditional"));
  // A glow run from before variational dequantisation has no dequantiser in its checkpoint.
  const gm::ModelEntry& glow = gm::find_model("glow");
  EXPECT_EQ(gm::make_config(glow).get_string("model.dequantization"), "auto");
  EXPECT_EQ(
      gm::make_run_config(glow, "[model]\nhidden = 0\n", "old").get_string("model.dequantization"),
      "uniform");
  // ... and ran NCHW (channels-last conditioners came later), so it resumes bit-identically.
  EXPECT_EQ(gm::make_config(glow).get_string("model.memory_format"), "auto");
  EXPECT_EQ(
      gm::make_run_config(glow, "[model]\nhidden = 0\n", "old").get_string("model.memory_format"),
      "nchw");
  // A pix2pix run from before the bottleneck's residual blocks has none in its checkpoint.
  const gm::ModelEntry& p2p = gm::find_model("pix2pix");
  EXPECT_EQ(gm::make_config(p2p).get_int("model.g_blocks"), 2);
  EXPECT_EQ(
      gm::make_run_config(p2p, "[model]\nlambda_l1 = 100.0\n", "old").get_int("model.g_blocks"), 0);
  // Every stored_run_defaults key exists and its value parses.
  for (const auto& entry : gm::model_registry())
    for (const auto& [key, value] : entry.stored_run_defaults) {
      gm::Config c = gm::make_config(entry);
      EXPECT_NO_THROW(c.set(key, value)) << entry.name << " " << key;
    }
}
