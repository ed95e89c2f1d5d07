// KeyTable (keys bound to struct members), Config::set_default and to_toml_commented.
#include "genmodels/core/options.h"

#include <gtest/gtest.h>

#include <functional>
#include <sstream>

#include "genmodels/core/error.h"

using gm::Config;
using gm::KeyTable;
using gm::ValueType;

namespace {

struct Opts {
  int64_t steps = 100;
  double lr = 2e-4;
  bool ema = true;
  std::string schedule = "linear";
  int workers = 4;
  uint64_t seed = 7;
  std::string name;
  std::string device = "cpu";  // not bound to a key
};

KeyTable<Opts> table() {
  KeyTable<Opts> t;
  t.add("train.steps", &Opts::steps, "optimizer steps")
      .add("train.lr", &Opts::lr, "peak learning rate")
      .add("train.ema", &Opts::ema, "keep an EMA of the weights")
      .add("diffusion.schedule", &Opts::schedule, "noise schedule", {"linear", "cosine"})
      .add("workers", &Opts::workers, "loader threads")
      .add("seed", &Opts::seed, "seed of every generator")
      .add("name", &Opts::name, "run name\n(free text)");
  return t;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const gm::Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST(KeyTable, KeysHaveTypesAndDefaultsFromTheStruct) {
  const auto keys = table().keys();
  ASSERT_EQ(keys.size(), 7u);
  EXPECT_EQ(table().names(),
            (std::vector<std::string>{"train.steps", "train.lr", "train.ema", "diffusion.schedule",
                                      "workers", "seed", "name"}));
  const std::vector<ValueType> types = {ValueType::Int,    ValueType::Float, ValueType::Bool,
                                        ValueType::String, ValueType::Int,   ValueType::Int,
                                        ValueType::String};
  const std::vector<std::string> defaults = {"100", "0.0002", "true", "linear", "4", "7", ""};
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(keys[i].type, types[i]) << keys[i].name;
    EXPECT_EQ(keys[i].default_value, defaults[i]) << keys[i].name;
  }
  EXPECT_EQ(keys[1].doc, "peak learning rate");
  EXPECT_EQ(keys[3].choices, (std::vector<std::string>{"linear", "cosine"}));

  Opts model;
  model.lr = 1e-3;
  model.schedule = "cosine";
  const auto changed = table().keys(model);
  EXPECT_EQ(changed[1].default_value, "0.001");
  EXPECT_EQ(changed[3].default_value, "cosine");
  EXPECT_EQ(changed[0].default_value, "100");
}

TEST(KeyTable, ReadsOverridesAndLeavesUnboundMembers) {
  const auto t = table();
  Config c(t.keys());
  const Opts d = t.read(c);
  EXPECT_EQ(d.steps, 100);
  EXPECT_EQ(d.lr, 2e-4);
  EXPECT_TRUE(d.ema);

  c.set_assignment("train.steps=5");
  c.set_assignment("train.lr=1e-3");
  c.set_assignment("train.ema=false");
  c.set_assignment("diffusion.schedule=cosine");
  c.set_assignment("workers=2");
  c.set_assignment("name=\"my run\"");
  Opts o;
  o.device = "cuda";
  t.read_into(c, o);
  EXPECT_EQ(o.steps, 5);
  EXPECT_EQ(o.lr, 1e-3);
  EXPECT_FALSE(o.ema);
  EXPECT_EQ(o.schedule, "cosine");
  EXPECT_EQ(o.workers, 2);
  EXPECT_EQ(o.seed, 7u);
  EXPECT_EQ(o.name, "my run");
  EXPECT_EQ(o.device, "cuda");
}

TEST(KeyTable, BadValuesNameTheKey) {
  const auto t = table();
  Config c(t.keys());
  const std::string choice = error_of([&] { c.set_assignment("diffusion.schedule=cosin"); });
  EXPECT_TRUE(contains(choice, "diffusion.schedule")) << choice;
  EXPECT_TRUE(contains(choice, "linear, cosine")) << choice;

  Opts bad;
  bad.schedule = "quadratic";
  const std::string written = error_of([&] { t.write(bad, c, "model"); });
  EXPECT_TRUE(contains(written, "model: diffusion.schedule")) << written;

  c.set_assignment("workers=10000000000");
  const std::string range = error_of([&] { t.read(c); });
  EXPECT_TRUE(contains(range, "workers = 10000000000 is out of range")) << range;
  c.set_assignment("workers=1");
  c.set_assignment("seed=-1");
  EXPECT_TRUE(contains(error_of([&] { t.read(c); }), "seed = -1"));

  KeyTable<Opts> dup;
  dup.add("train.lr", &Opts::lr, "lr");
  EXPECT_THROW(dup.add("train.lr", &Opts::lr, "lr"), std::logic_error);
  EXPECT_THROW(dup.add("train.steps", &Opts::steps, "steps", {"1", "2"}), std::logic_error);
}

TEST(KeyTable, WriteThenReadRoundTrips) {
  const auto t = table();
  Config c(t.keys());
  Opts o;
  o.steps = -3;
  o.lr = 1.0 / 3.0;
  o.ema = false;
  o.schedule = "cosine";
  o.workers = -2147483647 - 1;
  o.seed = 9007199254740993u;
  o.name = " 'quoted' # not a comment ";
  t.write(o, c, "test");
  const Opts r = t.read(c);
  EXPECT_EQ(r.steps, o.steps);
  EXPECT_EQ(r.lr, o.lr);
  EXPECT_EQ(r.ema, o.ema);
  EXPECT_EQ(r.schedule, o.schedule);
  EXPECT_EQ(r.workers, o.workers);
  EXPECT_EQ(r.seed, o.seed);
  EXPECT_EQ(r.name, o.name);

  Config d(t.keys());
  d.load_toml_string(c.to_toml(), "resolved");
  EXPECT_EQ(t.read(d).name, o.name);
  EXPECT_EQ(d.to_toml(), c.to_toml());
}

TEST(KeyTable, DoublesRoundTripExactly) {
  EXPECT_EQ(gm::format_float(2e-4), "0.0002");
  EXPECT_EQ(gm::format_float(0.1), "0.1");
  EXPECT_EQ(gm::format_float(3.0), "3");
  EXPECT_EQ(gm::format_float(1e-9), "1e-09");
  const auto t = table();
  for (double v : {2e-4, 1e-9, 0.1, 3.0, 1.0 / 3.0, 1e300, 5e-324, -0.0, 0.999, 1e-3}) {
    EXPECT_EQ(std::strtod(gm::format_float(v).c_str(), nullptr), v) << v;
    Opts o;
    o.lr = v;
    Config from_default(t.keys(o));
    EXPECT_EQ(t.read(from_default).lr, v) << v;
    Config written(t.keys());
    t.write(o, written, "test");
    EXPECT_EQ(t.read(written).lr, v) << v;
    Config reloaded(t.keys());
    reloaded.load_toml_string(written.to_toml_commented(), "resolved");
    EXPECT_EQ(t.read(reloaded).lr, v) << v;
  }
  Config c(t.keys());
  EXPECT_TRUE(contains(error_of([&] { c.set_assignment("train.lr=1e400"); }), "expected a number"));
}

TEST(Config, SetDefaultChangesTheDefault) {
  Config c(table().keys());
  c.set_default("train.lr", "1e-3");
  EXPECT_EQ(c.get_float("train.lr"), 1e-3);
  EXPECT_EQ(c.schema()[1].default_value, "1e-3");
  c.set_default("diffusion.schedule", "cosine");
  EXPECT_EQ(c.get_string("diffusion.schedule"), "cosine");

  const std::string unknown = error_of([&] { c.set_default("train.lrr", "1"); });
  EXPECT_TRUE(contains(unknown, "unknown key 'train.lrr'")) << unknown;
  EXPECT_TRUE(contains(unknown, "train.lr,")) << unknown;
  const std::string bad = error_of([&] { c.set_default("train.lr", "fast"); });
  EXPECT_TRUE(contains(bad, "train.lr")) << bad;
  EXPECT_TRUE(contains(bad, "expected a number")) << bad;
  EXPECT_FALSE(error_of([&] { c.set_default("diffusion.schedule", "sqrt"); }).empty());
  EXPECT_EQ(c.get_float("train.lr"), 1e-3);  // failed calls change nothing
  EXPECT_EQ(c.schema()[1].default_value, "1e-3");
}

TEST(Config, TomlCommentedRoundTrips) {
  const auto t = table();
  Config c(t.keys());
  c.set_assignment("seed=11");
  c.set_assignment("train.lr=3");  // integral float keeps its float type in TOML
  c.set_assignment("train.ema=false");
  c.set_assignment("diffusion.schedule=cosine");
  c.set_assignment("name=\"\"x\"\"");  // one level of quotes is removed, the inner stays

  Config odd(t.keys());
  odd.set_exact("name", " it's \"x\" \\ # \n\t\u00e9 ", "test");

  for (const Config& src : {Config(t.keys()), c, odd}) {
    const std::string text = src.to_toml_commented();
    Config d(t.keys());
    d.load_toml_string(text, "commented.toml");
    EXPECT_EQ(d.to_toml(), src.to_toml()) << text;
    EXPECT_EQ(d.to_json(), src.to_json()) << text;
  }
  EXPECT_EQ(c.get_string("name"), "\"x\"");

  const std::string text = c.to_toml_commented();
  EXPECT_TRUE(contains(text, "# noise schedule (choices: linear, cosine)\nschedule = 'cosine'\n"))
      << text;
  EXPECT_TRUE(contains(text, "# run name (free text)\nname = ")) << text;
  EXPECT_TRUE(contains(text, "# seed of every generator\nseed = 11\n")) << text;
  EXPECT_TRUE(contains(text, "lr = 3.0\n")) << text;
  EXPECT_LT(text.find("workers = "), text.find('[')) << text;

  // Every key line follows its comment line.
  std::istringstream lines(text);
  std::string line, previous;
  int keys = 0;
  while (std::getline(lines, line)) {
    if (line.find(" = ") != std::string::npos) {
      ++keys;
      EXPECT_EQ(previous.rfind("# ", 0), 0u) << line;
    }
    previous = line;
  }
  EXPECT_EQ(keys, 7);
}

TEST(Config, TomlStringsAreVerbatim) {
  Config c(table().keys());
  c.load_toml_string("name = \"'q' \"\n", "run.toml");
  EXPECT_EQ(c.get_string("name"), "'q' ");
  Config d(table().keys());
  d.load_toml_string(c.to_toml(), "resolved");
  EXPECT_EQ(d.get_string("name"), "'q' ");
}
