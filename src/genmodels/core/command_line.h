// Command lines as text: quoting for a POSIX shell and splitting back into arguments, so a
// command stored in a file (a PNG's `parameters` chunk) can be shown, pasted into a shell, and
// re-run by the program itself.
#pragma once
#include <string>
#include <vector>

namespace gm {

/// `arg` as one shell word: unchanged when it holds only safe characters, else in single quotes
/// (an embedded ' becomes '\'').
std::string shell_quote(const std::string& arg);

/// The words of a command line written with shell_quote (or by hand): blanks separate words;
/// single quotes keep everything literally; double quotes keep everything but \" and \\;
/// a backslash outside quotes escapes the next character. An unterminated quote or a trailing
/// backslash is a gm::Error naming `origin`.
std::vector<std::string> split_command_line(const std::string& line, const std::string& origin);

}  // namespace gm
