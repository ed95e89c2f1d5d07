// The model registry the CLI is built from: one row per family (models/registry.cpp).
#pragma once
#include <string>
#include <vector>

#include "genmodels/family/model.h"

namespace gm {

/// Every registered model.
const std::vector<ModelEntry>& model_registry();
/// The entry named `name`; the error lists the valid names.
const ModelEntry& find_model(const std::string& name);

}  // namespace gm
