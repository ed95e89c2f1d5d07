// Errors a user can act on: one line naming the file, key or value and how to fix it.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace gm {

/// Thrown for bad input (files, config, arguments). what() is a complete one-line message.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// A number as a message shows it: shortest form with 6 significant digits ("0.001", "2e+04").
inline std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace gm
