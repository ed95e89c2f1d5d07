// Atomic file writes: temp file in the same directory, fsync, rename. A crash at any point
// leaves either the old file or the new one, never a half-written file.
#pragma once
#include <functional>
#include <ostream>
#include <string>

namespace gm {

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync of the directory).
void write_file_atomic(const std::string& path, const std::string& bytes);

/// Streams into a temp file through `write`, then fsyncs and renames it to `path`.
/// If `write` throws, the temp file is removed and `path` is untouched.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);

/// Throws gm::Error naming `flag` (e.g. "--npy") unless `path` can be written as a file: not a
/// directory, and its parent directory exists. Commands call it before any work is done.
void check_output_file(const std::string& path, const std::string& flag);
/// Same for an output directory: no file in the way, and it exists or can be created (its nearest
/// existing ancestor is a directory).
void check_output_dir(const std::string& path, const std::string& flag);

/// Reads a whole file; throws gm::Error naming the path when it cannot be read.
std::string read_file(const std::string& path);

/// Creates a directory and its parents; throws gm::Error naming the path on failure.
void make_dirs(const std::string& path);

}  // namespace gm
