#include "genmodels/core/jsonl.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "genmodels/core/error.h"

namespace gm {

JsonlWriter::JsonlWriter(const std::string& path, bool append) : path_(path) {
  file_ = std::fopen(path.c_str(), append ? "a" : "w");
  if (!file_) throw Error("cannot open " + path + " for writing: " + std::strerror(errno));
}

JsonlWriter::~JsonlWriter() {
  if (file_) std::fclose(file_);
}

void JsonlWriter::write(const Json& record) {
  const std::string line = record.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw Error("write to " + path_ + " failed (disk full?)");
}

std::vector<Json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read " + path + ": " + std::strerror(errno));
  std::vector<Json> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    try {
      out.push_back(Json::parse(line));
    } catch (const std::exception& e) {
      throw Error(path + ":" + std::to_string(n) + ": not valid JSON: " + e.what());
    }
  }
  return out;
}

}  // namespace gm
