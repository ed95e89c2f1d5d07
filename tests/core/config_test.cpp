// Config: TOML + --set, typed validation, errors that list the valid keys.
#include "genmodels/core/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "genmodels/core/error.h"

using gm::Config;
using gm::ValueType;

namespace {

Config schema() {
  return Config(
      {{"seed", ValueType::Int, "0", "seed"},
       {"train.lr", ValueType::Float, "2e-4", "lr"},
       {"train.ema", ValueType::Bool, "true", "ema"},
       {"diffusion.schedule", ValueType::String, "linear", "schedule", {"linear", "cosine"}}});
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const gm::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Config, DefaultsAndSet) {
  Config c = schema();
  EXPECT_EQ(c.get_int("seed"), 0);
  EXPECT_DOUBLE_EQ(c.get_float("train.lr"), 2e-4);
  c.set_assignment("train.lr=1e-3");
  c.set_assignment("diffusion.schedule=cosine");
  c.set_assignment("train.ema=false");
  EXPECT_DOUBLE_EQ(c.get_float("train.lr"), 1e-3);
  EXPECT_EQ(c.get_string("diffusion.schedule"), "cosine");
  EXPECT_FALSE(c.get_bool("train.ema"));
}

TEST(Config, TomlTablesFlattenAndRoundTrip) {
  Config c = schema();
  c.load_toml_string(
      "seed = 7\n[train]\nlr = 0.01\nema = false\n[diffusion]\nschedule = \"cosine\"\n",
      "test.toml");
  EXPECT_EQ(c.get_int("seed"), 7);
  EXPECT_DOUBLE_EQ(c.get_float("train.lr"), 0.01);
  Config d = schema();
  d.load_toml_string(c.to_toml(), "resolved");
  EXPECT_EQ(d.to_json(), c.to_json());
}

TEST(Config, UnknownKeyListsValidKeys) {
  Config c = schema();
  const std::string msg = error_of([&] { c.set_assignment("train.lrr=1"); });
  EXPECT_NE(msg.find("unknown key 'train.lrr'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("train.lr"), std::string::npos);
  EXPECT_NE(msg.find("diffusion.schedule"), std::string::npos);
  const std::string toml =
      error_of([&] { c.load_toml_string("[train]\nbogus = 1\n", "run.toml"); });
  EXPECT_NE(toml.find("run.toml"), std::string::npos);
  EXPECT_NE(toml.find("train.bogus"), std::string::npos);
}

TEST(Config, BadValuesAreErrors) {
  Config c = schema();
  EXPECT_NE(error_of([&] { c.set_assignment("seed=abc"); }).find("expected an integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { c.set_assignment("train.lr=fast"); }).find("expected a number"),
            std::string::npos);
  EXPECT_NE(error_of([&] { c.set_assignment("train.ema=maybe"); }).find("true or false"),
            std::string::npos);
  const std::string m = error_of([&] { c.set_assignment("diffusion.schedule=cosin"); });
  EXPECT_NE(m.find("linear, cosine"), std::string::npos) << m;
  EXPECT_NE(error_of([&] { c.set_assignment("noequals"); }).find("key=value"), std::string::npos);
  EXPECT_NE(error_of([&] { c.load_toml_string("seed = = 3", "bad.toml"); }).find("bad.toml:1"),
            std::string::npos);
  EXPECT_EQ(c.get_int("seed"), 0);  // failed sets leave the value alone
}

TEST(Config, MissingFileIsError) {
  Config c = schema();
  EXPECT_THROW(c.load_toml_file("/nonexistent/run.toml"), gm::Error);
}
