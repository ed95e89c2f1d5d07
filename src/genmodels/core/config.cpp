#include "genmodels/core/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"

namespace gm {
namespace {

const char* type_name(ValueType t) {
  switch (t) {
    case ValueType::Int:
      return "int";
    case ValueType::Float:
      return "float";
    case ValueType::Bool:
      return "bool";
    case ValueType::String:
      return "string";
  }
  return "?";
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string join(const std::vector<std::string>& items) {
  std::string list;
  for (const auto& i : items) list += (list.empty() ? "" : ", ") + i;
  return list;
}

// Parses `raw` as `key`'s type; returns the canonical text or throws a one-line error.
// A `verbatim` string is the value itself (from TOML); otherwise it is trimmed and unquoted.
std::string canonical(const ConfigKey& key, const std::string& raw, const std::string& origin,
                      bool verbatim = false) {
  const std::string text = trim(raw);
  auto bad = [&](const std::string& why) {
    return Error(origin + ": " + key.name + " = '" + raw + "' is not valid: " + why);
  };
  switch (key.type) {
    case ValueType::Int: {
      char* end = nullptr;
      errno = 0;
      long long v = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno) throw bad("expected an integer");
      return std::to_string(v);
    }
    case ValueType::Float: {
      char* end = nullptr;
      errno = 0;
      double v = std::strtod(text.c_str(), &end);
      // ERANGE on underflow still gives the nearest double (0 or a subnormal); overflow is bad.
      if (text.empty() || *end != '\0' || (errno && std::isinf(v))) throw bad("expected a number");
      return format_float(v);
    }
    case ValueType::Bool: {
      std::string t = text;
      std::transform(t.begin(), t.end(), t.begin(), ::tolower);
      if (t == "true" || t == "1" || t == "yes" || t == "on") return "true";
      if (t == "false" || t == "0" || t == "no" || t == "off") return "false";
      throw bad("expected true or false");
    }
    case ValueType::String: {
      std::string v = verbatim ? raw : text;
      if (!verbatim && v.size() >= 2 && (v.front() == '"' || v.front() == '\'') &&
          v.back() == v.front())
        v = v.substr(1, v.size() - 2);
      if (!key.choices.empty() &&
          std::find(key.choices.begin(), key.choices.end(), v) == key.choices.end())
        throw bad("choose one of: " + join(key.choices));
      return v;
    }
  }
  return text;
}

void flatten(const toml::table& table, const std::string& prefix, Config& config,
             const std::string& origin) {
  for (const auto& [k, node] : table) {
    const std::string name =
        prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      flatten(*sub, name, config, origin);
    } else if (const auto* s = node.as_string()) {
      config.set_exact(name, s->get(), origin);
    } else if (const auto* i = node.as_integer()) {
      config.set(name, std::to_string(i->get()), origin);
    } else if (const auto* f = node.as_floating_point()) {
      config.set(name, format_float(f->get()), origin);
    } else if (const auto* b = node.as_boolean()) {
      config.set(name, b->get() ? "true" : "false", origin);
    } else {
      throw Error(origin + ": " + name +
                  " has an unsupported value type (use a number, string or bool)");
    }
  }
}

}  // namespace

std::string format_float(double v) {
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;  // 17 digits always suffice; NaN ends as "nan"
  }
  return buf;
}

Config::Config(std::vector<ConfigKey> schema) { add_keys(schema); }

void Config::add_keys(const std::vector<ConfigKey>& keys) {
  for (const auto& k : keys) {
    auto it = std::find_if(schema_.begin(), schema_.end(),
                           [&](const ConfigKey& s) { return s.name == k.name; });
    if (it != schema_.end())
      *it = k;
    else
      schema_.push_back(k);
    values_[k.name] = canonical(k, k.default_value, "default");
  }
}

void Config::set_default(const std::string& key, const std::string& value) {
  auto it = std::find_if(schema_.begin(), schema_.end(),
                         [&](const ConfigKey& s) { return s.name == key; });
  if (it == schema_.end()) key_or_throw(key, "set_default");  // throws with the list
  values_[key] = canonical(*it, value, "set_default");
  it->default_value = value;
}

const ConfigKey& Config::key_or_throw(const std::string& key, const std::string& origin) const {
  for (const auto& k : schema_)
    if (k.name == key) return k;
  std::string names;
  for (const auto& k : schema_) names += (names.empty() ? "" : ", ") + k.name;
  throw Error(origin + ": unknown key '" + key + "'; valid keys: " + names);
}

void Config::load_toml_file(const std::string& path) {
  toml::table table;
  const std::string text = read_file(path);  // names the file and the reason it cannot be read
  try {
    table = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw Error(path + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) +
                ": TOML syntax error: " + std::string(e.description()));
  }
  flatten(table, "", *this, path);
}

void Config::load_toml_string(const std::string& text, const std::string& origin) {
  toml::table table;
  try {
    table = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    throw Error(origin + ":" + std::to_string(e.source().begin.line) +
                ": TOML syntax error: " + std::string(e.description()));
  }
  flatten(table, "", *this, origin);
}

void Config::set_assignment(const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error("--set '" + assignment + "': expected key=value, e.g. --set train.lr=2e-4");
  set(trim(assignment.substr(0, eq)), assignment.substr(eq + 1), "--set");
}

void Config::set(const std::string& key, const std::string& value, const std::string& origin) {
  const ConfigKey& k = key_or_throw(key, origin);
  values_[key] = canonical(k, value, origin);
}

void Config::set_exact(const std::string& key, const std::string& value,
                       const std::string& origin) {
  const ConfigKey& k = key_or_throw(key, origin);
  values_[key] = canonical(k, value, origin, true);
}

bool Config::has(const std::string& key) const { return values_.count(key) > 0; }

std::string Config::get_string(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) key_or_throw(key, "config");  // throws with the list
  return it->second;
}
int64_t Config::get_int(const std::string& key) const { return std::stoll(get_string(key)); }
double Config::get_float(const std::string& key) const {
  return std::strtod(get_string(key).c_str(), nullptr);  // std::stod throws on subnormals
}
bool Config::get_bool(const std::string& key) const { return get_string(key) == "true"; }

std::string Config::to_toml() const { return toml_text(false); }

std::string Config::to_toml_commented() const { return toml_text(true); }

std::string Config::toml_text(bool with_docs) const {
  // Group by the part before the last dot; top-level keys first (before any [table] header).
  std::map<std::string, std::vector<const ConfigKey*>> groups;
  for (const auto& k : schema_) {
    auto dot = k.name.rfind('.');
    groups[dot == std::string::npos ? "" : k.name.substr(0, dot)].push_back(&k);
  }
  std::ostringstream out;
  for (const auto& [group, keys] : groups) {
    if (!group.empty()) out << "\n[" << group << "]\n";
    for (const ConfigKey* k : keys) {
      const std::string leaf = group.empty() ? k->name : k->name.substr(group.size() + 1);
      const std::string& v = values_.at(k->name);
      if (with_docs) {
        std::string note = k->doc;
        if (!k->choices.empty())
          note += (note.empty() ? "(choices: " : " (choices: ") + join(k->choices) + ")";
        std::replace_if(
            note.begin(), note.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
        if (!note.empty()) out << "# " << note << "\n";
      }
      if (k->type == ValueType::String) {
        out << leaf << " = " << toml::value<std::string>(v) << "\n";
      } else if (k->type == ValueType::Float && v.find_first_of(".eEn") == std::string::npos) {
        out << leaf << " = " << v << ".0\n";  // keep TOML's float type
      } else {
        out << leaf << " = " << v << "\n";
      }
    }
  }
  return out.str();
}

Json Config::to_json() const {
  Json j = Json::object();
  for (const auto& k : schema_) {
    const std::string& v = values_.at(k.name);
    switch (k.type) {
      case ValueType::Int:
        j[k.name] = std::stoll(v);
        break;
      case ValueType::Float:
        j[k.name] = std::strtod(v.c_str(), nullptr);
        break;
      case ValueType::Bool:
        j[k.name] = (v == "true");
        break;
      case ValueType::String:
        j[k.name] = v;
        break;
    }
  }
  return j;
}

std::string Config::describe_keys() const {
  std::ostringstream out;
  for (const auto& k : schema_) {
    out << "  " << k.name << " (" << type_name(k.type) << ", default " << values_.at(k.name);
    if (!k.choices.empty()) {
      out << "; one of";
      for (const auto& c : k.choices) out << " " << c;
    }
    out << "): " << k.doc << "\n";
  }
  return out.str();
}

}  // namespace gm
