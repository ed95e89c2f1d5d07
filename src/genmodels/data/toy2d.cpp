// Toy 2-D data after FFJORD's lib/toy_data.py (moons, 8gaussians, swissroll, checkerboard,
// circles). Each shape is then centred and divided by its measured RMS (2e6 draws) so that every
// toy has roughly unit std and the same model settings work across them.
#include "genmodels/data/toy2d.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "genmodels/core/error.h"

namespace gm::data {
namespace {

using torch::Tensor;

Tensor moons(int64_t n, at::Generator& g) {
  const int64_t outer = n / 2;
  Tensor t = torch::rand({n}, g) * M_PI;
  Tensor is_outer = torch::arange(n) < outer;
  Tensor x = torch::where(is_outer, torch::cos(t), 1 - torch::cos(t));
  Tensor y = torch::where(is_outer, torch::sin(t), 1 - torch::sin(t) - 0.5);
  Tensor d = torch::stack({x, y}, 1) + 0.1 * torch::randn({n, 2}, g);
  d = d * 2 + torch::tensor({-1.0f, -0.5f});  // FFJORD shifts by (-1, -0.2); -0.5 centres y
  return d / 1.424;
}

Tensor eight_gaussians(int64_t n, at::Generator& g) {
  const double s = 1.0 / std::sqrt(2.0);
  Tensor centers =
      torch::tensor({1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 0.0, -1.0, s, s, s, -s, -s, s, -s, -s},
                    torch::kFloat32)
          .view({8, 2}) *
      4.0;
  Tensor idx = torch::randint(0, 8, {n}, g, torch::kLong);
  Tensor d = (0.5 * torch::randn({n, 2}, g) + centers.index_select(0, idx)) / 1.414;
  return d / 2.031;
}

Tensor swissroll(int64_t n, at::Generator& g) {
  Tensor t = 1.5 * M_PI * (1 + 2 * torch::rand({n}, g));
  Tensor d = torch::stack({t * torch::cos(t), t * torch::sin(t)}, 1) + torch::randn({n, 2}, g);
  d = d / 5.0 - torch::tensor({0.40f, 0.04f});
  return d / 1.373;
}

Tensor checkerboard(int64_t n, at::Generator& g) {
  Tensor x1 = torch::rand({n}, g) * 4 - 2;
  Tensor x2 =
      torch::rand({n}, g) - torch::randint(0, 2, {n}, g, torch::kLong).to(torch::kFloat32) * 2;
  x2 = x2 + torch::remainder(torch::floor(x1), 2);
  return torch::stack({x1, x2}, 1) * 2 / 2.310;
}

Tensor circles(int64_t n, at::Generator& g) {
  Tensor radius = torch::where(torch::arange(n) < n / 2, torch::tensor(1.0f), torch::tensor(0.5f));
  Tensor t = torch::rand({n}, g) * (2 * M_PI);
  Tensor d = torch::stack({radius * torch::cos(t), radius * torch::sin(t)}, 1) +
             0.08 * torch::randn({n, 2}, g);
  return d * 3 / 1.695;
}

std::string joined_names() {
  std::string s;
  for (const auto& n : toy2d_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

std::vector<std::string> toy2d_names() {
  return {"moons", "8gaussians", "swissroll", "checkerboard", "circles"};
}

torch::Tensor sample_toy2d(const std::string& name, int64_t n, uint64_t seed) {
  if (n < 0)
    throw Error("toy dataset '" + name + "': point count must be >= 0, got " + std::to_string(n));
  at::Generator g = at::detail::createCPUGenerator(seed);
  Tensor d;
  if (name == "moons")
    d = moons(n, g);
  else if (name == "8gaussians")
    d = eight_gaussians(n, g);
  else if (name == "swissroll")
    d = swissroll(n, g);
  else if (name == "checkerboard")
    d = checkerboard(n, g);
  else if (name == "circles")
    d = circles(n, g);
  else
    throw Error("unknown toy dataset '" + name + "' (valid: " + joined_names() + ")");
  return d.to(torch::kFloat32).contiguous();
}

}  // namespace gm::data
