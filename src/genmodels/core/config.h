// Run configuration: a schema of typed keys with defaults and docs, filled from a TOML file
// (--config) and `--set key=value`. Unknown keys and bad values are errors listing valid keys.
// TOML tables flatten to dotted keys: [train] lr = 2e-4 is the key "train.lr".
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "genmodels/core/json.h"

namespace gm {

/// Shortest text that parses back to exactly `v` ("0.0002", "1e-09", "3").
std::string format_float(double v);

enum class ValueType { Int, Float, Bool, String };

/// One configurable setting.
struct ConfigKey {
  std::string name;  ///< dotted name, e.g. "train.lr"
  ValueType type = ValueType::String;
  std::string default_value;         ///< textual default (parsed like a --set value)
  std::string doc;                   ///< one line shown in errors and `genmodels list`
  std::vector<std::string> choices;  ///< allowed values for strings (empty = any)
};

class Config {
 public:
  Config() = default;
  explicit Config(std::vector<ConfigKey> schema);

  /// Adds keys to the schema (a later key with the same name replaces the default).
  void add_keys(const std::vector<ConfigKey>& keys);
  /// Changes a key's default (validated like set()) and resets its value to it: call it while
  /// building the schema, before loading user values.
  void set_default(const std::string& key, const std::string& value);

  /// Reads a TOML file; every key must be in the schema.
  void load_toml_file(const std::string& path);
  /// Same for TOML text; `origin` names it in errors.
  void load_toml_string(const std::string& text, const std::string& origin);

  /// "key=value" as given to --set.
  void set_assignment(const std::string& assignment);
  /// Sets one key from text, validating type and choices. `origin` names the source in errors.
  void set(const std::string& key, const std::string& value, const std::string& origin = "--set");
  /// Like set(), but a string value is taken verbatim (no trimming or quote removal).
  void set_exact(const std::string& key, const std::string& value, const std::string& origin);

  bool has(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;

  /// Resolved configuration as TOML (grouped by table) and as JSON.
  std::string to_toml() const;
  Json to_json() const;
  /// to_toml() with a "# doc (choices: ...)" line above each key; loads back to the same values.
  std::string to_toml_commented() const;

  const std::vector<ConfigKey>& schema() const { return schema_; }
  /// "  key (type, default X): doc" lines, for help and error messages.
  std::string describe_keys() const;

 private:
  const ConfigKey& key_or_throw(const std::string& key, const std::string& origin) const;
  std::string toml_text(bool with_docs) const;
  std::vector<ConfigKey> schema_;
  std::map<std::string, std::string> values_;  // canonical textual values
};

}  // namespace gm
