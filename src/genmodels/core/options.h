// KeyTable: binds each config key to the options-struct member it fills, so a key is named
// once and its default is the member's default initialiser. One table gives the schema
// (keys), fills a struct from a Config (read) and writes a struct back (write).
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "genmodels/core/config.h"

namespace gm {

/// config.get_int(key), or a gm::Error naming the key when the value is outside [lo, hi].
int64_t get_int_in_range(const Config& config, const std::string& key, int64_t lo, uint64_t hi);

template <class S>
class KeyTable {
 public:
  /// Binds the dotted key `name` to `member` (an integer, double, bool or std::string; integers
  /// must fit int64_t). `choices` restricts a string to those values.
  template <class M>
  KeyTable& add(std::string name, M S::*member, std::string doc,
                std::vector<std::string> choices = {});

  /// The keys, with defaults from S{}.
  std::vector<ConfigKey> keys() const { return keys(S{}); }
  /// The keys, with defaults from `defaults` (e.g. a model's own recommended values).
  std::vector<ConfigKey> keys(const S& defaults) const;

  /// A S{} with every bound member read from its key.
  S read(const Config& config) const {
    S s{};
    read_into(config, s);
    return s;
  }
  /// Reads every bound member of `s` from its key; other members are left alone.
  void read_into(const Config& config, S& s) const;
  /// Sets every bound key from `s`; `origin` names the source in errors.
  void write(const S& s, Config& config, const std::string& origin) const;

  /// The keys' names in the order they were added.
  const std::vector<std::string>& names() const { return names_; }

 private:
  struct Row {
    ConfigKey key;  // default_value is filled per call from a struct
    std::function<std::string(const S&)> format;
    std::function<void(const Config&, S&)> read;
  };
  std::vector<Row> rows_;
  std::vector<std::string> names_;
};

template <class S>
template <class M>
KeyTable<S>& KeyTable<S>::add(std::string name, M S::*member, std::string doc,
                              std::vector<std::string> choices) {
  for (const auto& n : names_)
    if (n == name) throw std::logic_error("KeyTable: key '" + name + "' added twice");
  Row row;
  if constexpr (std::is_same_v<M, std::string>) {
    row.key.type = ValueType::String;
    row.format = [member](const S& s) { return s.*member; };
    row.read = [member, name](const Config& c, S& s) { s.*member = c.get_string(name); };
  } else if constexpr (std::is_same_v<M, bool>) {
    row.key.type = ValueType::Bool;
    row.format = [member](const S& s) { return std::string(s.*member ? "true" : "false"); };
    row.read = [member, name](const Config& c, S& s) { s.*member = c.get_bool(name); };
  } else if constexpr (std::is_same_v<M, double>) {
    row.key.type = ValueType::Float;
    row.format = [member](const S& s) { return format_float(s.*member); };
    row.read = [member, name](const Config& c, S& s) { s.*member = c.get_float(name); };
  } else {
    static_assert(std::is_integral_v<M>,
                  "KeyTable members must be an integer, double, bool or std::string");
    row.key.type = ValueType::Int;
    row.format = [member](const S& s) { return std::to_string(s.*member); };
    row.read = [member, name](const Config& c, S& s) {
      s.*member = static_cast<M>(
          get_int_in_range(c, name, std::numeric_limits<M>::min(), std::numeric_limits<M>::max()));
    };
  }
  if (!choices.empty() && row.key.type != ValueType::String)
    throw std::logic_error("KeyTable: key '" + name + "' has choices but is not a string");
  row.key.name = name;
  row.key.doc = std::move(doc);
  row.key.choices = std::move(choices);
  rows_.push_back(std::move(row));
  names_.push_back(std::move(name));
  return *this;
}

template <class S>
std::vector<ConfigKey> KeyTable<S>::keys(const S& defaults) const {
  std::vector<ConfigKey> out;
  for (const auto& row : rows_) {
    out.push_back(row.key);
    out.back().default_value = row.format(defaults);
  }
  return out;
}

template <class S>
void KeyTable<S>::read_into(const Config& config, S& s) const {
  for (const auto& row : rows_) row.read(config, s);
}

template <class S>
void KeyTable<S>::write(const S& s, Config& config, const std::string& origin) const {
  for (const auto& row : rows_) config.set_exact(row.key.name, row.format(s), origin);
}

}  // namespace gm
