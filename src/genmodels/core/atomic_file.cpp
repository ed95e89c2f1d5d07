#include "genmodels/core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "genmodels/core/error.h"

namespace gm {
namespace fs = std::filesystem;

namespace {

void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;  // best effort for directories on exotic filesystems
  ::fsync(fd);
  ::close(fd);
}

std::string temp_name_for(const std::string& path) {
  return path + ".tmp." + std::to_string(::getpid());
}

// The data must be on disk before the rename makes it the file: on a full disk the error may
// only surface here (delayed allocation), and renaming then would replace a good file.
void sync_file(const std::string& tmp, const std::string& path) {
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  const int err = fd < 0 ? errno : (::fsync(fd) == 0 ? 0 : errno);
  if (fd >= 0) ::close(fd);
  if (err != 0 && err != EINVAL && err != EROFS) {  // EINVAL/EROFS: files that cannot sync
    std::remove(tmp.c_str());
    throw Error("cannot write " + path + ": " + std::strerror(err) +
                (err == ENOSPC || err == EDQUOT ? " (free some space; the previous file is intact)"
                                                : " (the previous file is intact)"));
  }
}

// GM_FAULT_SLOW_WRITE_MS=N: the reliability tests widen the window between writing a file and
// renaming it, so that kills land inside checkpoint writes.
void fault_delay() {
  static const int ms = [] {
    const char* v = std::getenv("GM_FAULT_SLOW_WRITE_MS");
    return v ? std::atoi(v) : 0;
  }();
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

void commit(const std::string& tmp, const std::string& path) {
  fault_delay();
  sync_file(tmp, path);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throw Error("cannot rename " + tmp + " to " + path + ": " + std::strerror(err));
  }
  fs::path parent = fs::path(path).parent_path();
  fsync_path(parent.empty() ? "." : parent.string(), true);
}

// A directory this process may create entries in (write and search permission); root passes.
void check_writable_dir(const fs::path& dir, const std::string& flag, const std::string& path) {
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw Error(flag + " " + path + ": the directory " + dir.string() + " is not writable (" +
                std::strerror(errno) + "; check its permissions or choose another path)");
}

}  // namespace

void check_output_file(const std::string& path, const std::string& flag) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw Error(flag + " " + path + " is a directory; give a file name (e.g. " +
                (fs::path(path) / "out").string() + ")");
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec))
    throw Error(flag + " " + path + ": the directory " + parent.string() +
                (fs::exists(parent, ec) ? " is a file" : " does not exist (create it first)"));
  check_writable_dir(parent.empty() ? fs::path(".") : parent, flag, path);
}

void check_output_dir(const std::string& path, const std::string& flag) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  if (fs::exists(p, ec) && !fs::is_directory(p, ec))
    throw Error(flag + " " + path + " is a file, not a directory; choose another path");
  while (!p.empty() && !fs::exists(p, ec) && p != p.parent_path()) p = p.parent_path();
  if (!p.empty() && fs::exists(p, ec) && !fs::is_directory(p, ec))
    throw Error(flag + " " + path + ": " + p.string() +
                " is a file, so the directory cannot be made");
  if (!p.empty()) check_writable_dir(p, flag, path);
}

void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write) {
  check_output_file(path, "output");
  const std::string tmp = temp_name_for(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw Error("cannot write " + tmp + ": " + std::strerror(errno) +
                  " (check that the directory exists and is writable)");
    try {
      write(out);
    } catch (const Error&) {
      out.close();
      std::remove(tmp.c_str());
      throw;
    } catch (const std::exception& e) {  // e.g. LibTorch's serializer on a failed write
      const int err = errno;
      out.close();
      std::remove(tmp.c_str());
      std::string what = e.what();
      what = what.substr(0, what.find('\n'));
      throw Error("cannot write " + path + ": " + (err ? std::strerror(err) : what.c_str()) +
                  " (disk full? the previous file is intact)");
    }
    out.flush();
    out.close();
    if (out.fail()) {
      const int err = errno;
      std::remove(tmp.c_str());
      throw Error("cannot write " + path + ": " + (err ? std::strerror(err) : "write failed") +
                  " (disk full? the previous file is intact)");
    }
  }
  commit(tmp, path);
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, [&](std::ostream& out) { out.write(bytes.data(), bytes.size()); });
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw Error(path + " is a directory; give a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> list_directory(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec))
    out.push_back(it->path().string());
  if (ec) throw Error("cannot list the folder " + dir + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) throw Error("cannot create directory " + path + ": " + ec.message());
}

}  // namespace gm
