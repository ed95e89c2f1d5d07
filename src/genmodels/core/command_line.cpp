#include "genmodels/core/command_line.h"

#include <cctype>

#include "genmodels/core/error.h"

namespace gm {

std::string shell_quote(const std::string& arg) {
  bool safe = !arg.empty();
  for (unsigned char c : arg)
    safe = safe && (std::isalnum(c) ||
                    std::string("@%+=:,./_-").find(static_cast<char>(c)) != std::string::npos);
  if (safe) return arg;
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::vector<std::string> split_command_line(const std::string& line, const std::string& origin) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(word);
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\'') {
      const size_t end = line.find('\'', i + 1);
      if (end == std::string::npos)
        throw Error(origin + ": unterminated ' quote in the command line: " + line);
      word += line.substr(i + 1, end - i - 1);
      i = end;
    } else if (c == '"') {
      size_t j = i + 1;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size() && (line[j + 1] == '"' || line[j + 1] == '\\'))
          ++j;
        word += line[j];
      }
      if (j >= line.size())
        throw Error(origin + ": unterminated \" quote in the command line: " + line);
      i = j;
    } else if (c == '\\') {
      if (i + 1 >= line.size())
        throw Error(origin + ": the command line ends with a backslash: " + line);
      word += line[++i];
    } else {
      word += c;
    }
  }
  if (in_word) words.push_back(word);
  return words;
}

}  // namespace gm
