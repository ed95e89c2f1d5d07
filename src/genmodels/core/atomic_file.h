// Atomic file writes: temp file in the same directory, fsync, rename. A crash at any point
// leaves either the old file or the new one, never a half-written file.
#pragma once
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace gm {

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync of the directory).
void write_file_atomic(const std::string& path, const std::string& bytes);

/// Streams into a temp file through `write`, then fsyncs and renames it to `path`.
/// If `write` throws, the temp file is removed and `path` is untouched.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);

/// Throws gm::Error naming `flag` (e.g. "--npy") unless `path` can be written as a file: not a
/// directory, and its parent directory exists and is writable. Commands call it before any work.
void check_output_file(const std::string& path, const std::string& flag);
/// Same for an output directory: no file in the way, and it exists and is writable or can be
/// created (its nearest existing ancestor is a writable directory).
void check_output_dir(const std::string& path, const std::string& flag);

/// Reads a whole file; throws gm::Error naming the path when it cannot be read.
std::string read_file(const std::string& path);

/// The paths of the entries of directory `dir`, sorted; throws gm::Error naming `dir` when it
/// cannot be listed (e.g. no read permission), rather than reporting an empty folder.
std::vector<std::string> list_directory(const std::string& dir);

/// Creates a directory and its parents; throws gm::Error naming the path on failure.
void make_dirs(const std::string& path);

}  // namespace gm
