#!/usr/bin/env bash
# Quality recipe for the GANs (issue #13): train `dcgan` and `wgan-gp`, class-conditional and
# unconditional, for a wall-clock budget each (default 15 minutes, the main job's), draw 10,000
# samples (timed: one generator pass per image), and score them with the Fashion-MNIST evaluator
# beside the main job's diffusion run when one exists (runs/fmnist-quality-15m, made by
# MINUTES=15 bench/fmnist_quality.sh). Prints one table; JSON per run in bench/results/.
#   MINUTES=15 N=10000 MODELS="dcgan wgan-gp" bench/gan_quality.sh [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-15}
N=${N:-10000}
MODELS=${MODELS:-"dcgan wgan-gp"}
GM=${GM:-build/genmodels}
mkdir -p bench/results
rows=()
for model in $MODELS; do
  for cond in true false; do
    run=runs/gan-quality-$model-cond$cond-${MINUTES}m
    if [ ! -f "$run/checkpoint.pt" ]; then
      $GM train "$model" --data fashion-mnist --minutes "$MINUTES" --out "$run" \
        --set model.conditional=$cond "$@"
    fi
    $GM sample "$run" --n 100 --out "$run/grid"
    start=$(date +%s.%N)
    $GM sample "$run" --n "$N" --out "$run/all" --npy "$run/samples.npy" 2>/dev/null
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    json=bench/results/gan_quality_${model}_cond${cond}.json
    $GM eval "$run/samples.npy" --n "$N" --metrics fid,kid,pr,acc,is --json "$json" >/dev/null
    rows+=("$model cond=$cond|$json|$secs")
  done
done
if [ -f bench/results/fmnist_quality.json ]; then rows+=("ddpm (main job)|bench/results/fmnist_quality.json|"); fi
printf '%-24s %8s %8s %8s %8s %8s %8s %10s\n' run FID KID prec recall acc entropy "sample s"
for row in "${rows[@]}"; do
  IFS='|' read -r name json secs <<<"$row"
  python3 - "$name" "$json" "$secs" <<'PY'
import json, sys
name, path, secs = sys.argv[1], sys.argv[2], sys.argv[3]
m = json.load(open(path))["metrics"]
g = lambda k: m.get(k, {}).get("value", float("nan"))
print(f"{name:<24} {g('fid'):8.2f} {g('kid'):8.4f} {g('precision'):8.3f} {g('recall'):8.3f} "
      f"{g('class_accuracy'):8.3f} {g('class_entropy'):8.3f} {secs or '-':>10}")
PY
done
