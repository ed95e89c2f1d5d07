// TOML config files (--config) bound to typed keys: core/config.h, core/options.h.
#include "fuzz_util.h"
#include "genmodels/core/options.h"

namespace {

struct Opts {
  int64_t steps = 10;
  double lr = 1e-3;
  bool flag = false;
  std::string name = "a";
  std::string kind = "adam";
};

const gm::KeyTable<Opts>& keys() {
  static const gm::KeyTable<Opts> t = [] {
    gm::KeyTable<Opts> k;
    k.add("train.steps", &Opts::steps, "an integer");
    k.add("train.lr", &Opts::lr, "a number");
    k.add("model.flag", &Opts::flag, "a bool");
    k.add("data.name", &Opts::name, "a string");
    k.add("train.optimizer", &Opts::kind, "a choice", {"adam", "adamw"});
    return k;
  }();
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  gm::fuzz::expect_clean([&] {
    gm::Config c;
    c.add_keys(keys().keys());
    c.load_toml_string(text, "fuzz.toml");
    keys().read(c);
    c.to_toml();
  });
  const std::string path = gm::fuzz::write_input(data, size, "x.toml");
  gm::fuzz::expect_clean([&] {
    gm::Config c;
    c.add_keys(keys().keys());
    c.load_toml_file(path);
    c.set_assignment(text.substr(0, text.find('\n')));  // the same bytes as a --set argument
  });
  return 0;
}
