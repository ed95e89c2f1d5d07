// Shared by the libFuzzer harnesses: each writes the input to a file on tmpfs and calls the
// reader the program uses on outside files. A reader may reject the input with gm::Error (the
// one-line error the user sees); anything else (a crash, a sanitizer report, another exception,
// a hang, a leak) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "genmodels/core/error.h"

namespace gm::fuzz {

/// /dev/shm/gm_fuzz_<pid>_<name>: rewritten for every input.
inline std::string write_input(const uint8_t* data, size_t size, const std::string& name) {
  const std::string path = "/dev/shm/gm_fuzz_" + std::to_string(::getpid()) + "_" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return path;
}

/// Runs `f`; gm::Error is the expected way to refuse bad bytes.
template <class F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const gm::Error&) {
  }
}

}  // namespace gm::fuzz
