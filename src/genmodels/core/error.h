// Errors a user can act on: one line naming the file, key or value and how to fix it.
#pragma once
#include <stdexcept>
#include <string>

namespace gm {

/// Thrown for bad input (files, config, arguments). what() is a complete one-line message.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace gm
