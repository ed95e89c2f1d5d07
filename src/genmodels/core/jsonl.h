// Append-only JSON-lines log (metrics.jsonl): one object per line, flushed per line so a
// crash loses at most the line being written.
#pragma once
#include <cstdio>
#include <string>

#include "genmodels/core/json.h"

namespace gm {

class JsonlWriter {
 public:
  /// Opens `path` for appending (append = false truncates).
  JsonlWriter(const std::string& path, bool append = true);
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;
  void write(const Json& record);

 private:
  std::FILE* file_ = nullptr;
  std::string path_;
};

/// Reads every line of a JSON-lines file (errors name the file and line).
std::vector<Json> read_jsonl(const std::string& path);

}  // namespace gm
