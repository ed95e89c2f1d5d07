#!/usr/bin/env bash
# Quality recipe for the main job (issue #3): train the default class-conditional diffusion model on
# Fashion-MNIST for a wall-clock budget (default 60 minutes), draw a per-class grid and 10,000
# samples, and score them with the Fashion-MNIST evaluator (FID, KID, precision/recall, class
# accuracy, IS analogue). Results: RUN/eval.json and bench/results/fmnist_quality.json.
#   MINUTES=60 N=10000 STEPS=50 bench/fmnist_quality.sh [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-60}
N=${N:-10000}
STEPS=${STEPS:-50}
RUN=${RUN:-runs/fmnist-quality-${MINUTES}m}
GM=${GM:-build/genmodels}
mkdir -p bench/results
if [ ! -f "$RUN/checkpoint.pt" ]; then
  $GM train ddpm --data fashion-mnist --minutes "$MINUTES" --out "$RUN" "$@"
fi
$GM sample "$RUN" --sampler ddim --steps "$STEPS" --n 100 --out "$RUN/grid"   # column = class
start=$(date +%s)
$GM sample "$RUN" --sampler ddim --steps "$STEPS" --n "$N" --out "$RUN/all" --npy "$RUN/samples.npy"
echo "sampling $N images took $(( $(date +%s) - start )) s"
$GM eval "$RUN/samples.npy" --n "$N" --metrics fid,kid,pr,acc,is --json bench/results/fmnist_quality.json
