#!/usr/bin/env bash
# Sampler sweep for a trained diffusion run: FID and friends for each (steps, guidance) pair, so the
# quality recipe (bench/fmnist_quality.sh) and the defaults can use the best setting.
#   RUN=runs/fmnist N=2000 STEPS="25 50" GUIDANCE="1 1.5 2" bench/guidance_sweep.sh [eval options]
# Writes RUN/sweep/ddim-S-gG.json per setting and prints one line per setting.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:?set RUN to a run directory}
N=${N:-2000}
STEPS=${STEPS:-"25 50"}
GUIDANCE=${GUIDANCE:-"1 1.5 2"}
GM=${GM:-build/genmodels}
mkdir -p "$RUN/sweep"
for s in $STEPS; do
  for g in $GUIDANCE; do
    out="$RUN/sweep/ddim-$s-g$g.json"
    start=$(date +%s)
    $GM eval "$RUN" --n "$N" --sampler ddim --steps "$s" --guidance "$g" \
      --metrics fid,kid,pr,acc,is --json "$out" "$@" > "$out.log"
    echo "steps $s guidance $g ($(( $(date +%s) - start )) s):"; grep -iE "fid|kid|precision|recall|accuracy|IS" "$out.log" | sed "s/^/    /"
  done
done
