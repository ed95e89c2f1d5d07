// Precompiled header: LibTorch's front-end costs ~20 s per translation unit without it.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>
