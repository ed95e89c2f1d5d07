#!/usr/bin/env bash
# The installed package works for a downstream project: `cmake --install` into a temporary
# prefix, build examples/ with find_package(genmodels), link the same object again through
# pkg-config, and sample a tiny run with both programs (same seed -> identical grids).
#   check_package.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d /tmp/gm_install.XXXXXX)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
test -f "$work/prefix/lib/cmake/genmodels/genmodelsConfig.cmake"
test -f "$work/prefix/include/genmodels/models/run.h"
test -x "$work/prefix/bin/genmodels"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$src/examples" -B "$work/ex" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}" >/dev/null
cmake --build "$work/ex" >/dev/null
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
pkg-config --exists genmodels
# shellcheck disable=SC2046
g++ -o "$work/sample16_pc" "$work/ex/CMakeFiles/sample16.dir/sample16.cpp.o" \
  $(pkg-config --libs genmodels)
"$work/prefix/bin/genmodels" train ddpm --data moons --steps 5 --set model.mlp_hidden=16 \
  --set diffusion.timesteps=20 --out "$work/run" --quiet >/dev/null
"$work/ex/sample16" "$work/run" "$work/a.png" 7 | grep -q "wrote 16 samples"
"$work/sample16_pc" "$work/run" "$work/b.png" 7 | grep -q "wrote 16 samples"
cmp "$work/a.png" "$work/b.png"
echo "install package: find_package and pkg-config builds sample a run identically"
