// JSON for metrics, reports and benchmark output (nlohmann::json, Debian's nlohmann-json3-dev).
#pragma once
#include <nlohmann/json.hpp>

namespace gm {
using Json = nlohmann::json;
}
