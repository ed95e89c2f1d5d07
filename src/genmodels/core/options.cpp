// The non-template helpers of KeyTable: exact float text and range-checked integers.
#include "genmodels/core/options.h"

#include <cstdio>
#include <cstdlib>

#include "genmodels/core/error.h"

namespace gm {

int64_t get_int_in_range(const Config& config, const std::string& key, int64_t lo, uint64_t hi) {
  const int64_t v = config.get_int(key);
  if (v < lo || (v > 0 && static_cast<uint64_t>(v) > hi))
    throw Error(key + " = " + std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " +
                std::to_string(hi) + "]");
  return v;
}

}  // namespace gm
