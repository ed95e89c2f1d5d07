#!/usr/bin/env bash
# Sampler quality recipe (issue #15): FID (the Fashion-MNIST evaluator, #4) of every sampler at
# NFE = 10, 20, 50 on one trained main-job run, all on the same seeded N samples (FID depends on
# the sample count: compare only at equal N), beside 1000-step ancestral DDPM (about an hour for
# 2,000 samples here: computed once and cached in RUN/sampler-fid-nN/ddpm-1000.json; REF=0
# skips it).
#   RUN=runs/fmnist-quality-15m N=2000 NFES="10 20 50" [SCHEDULE=discrete|karras|exponential] \
#     bench/sampler_quality.sh [SAMPLER ...]
# Steps per NFE: 2 evaluations per step for heun and dpm++2s_a (the last step takes 1), 2 for pc
# (1 corrector step); ode is adaptive and runs at rtol = atol = 1e-2, 1e-3, 1e-4 instead.
# Writes bench/results/sampler_quality.json and prints one table.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/fmnist-quality-15m}
N=${N:-2000}
NFES=${NFES:-"10 20 50"}
GM=${GM:-build/genmodels}
SAMPLERS=${*:-"ddim euler heun euler_a lms dpm++2m dpm++2m_sde dpm++2s_a unipc pc ode"}
out=$RUN/sampler-fid-n$N
REF=${REF:-1}  # 0: skip the 1000-step DDPM reference
SCHEDULE=${SCHEDULE:-}  # a sample.schedule for the sigma samplers (default: the run's)
mkdir -p "$out" bench/results
fid() {  # name, then sample flags
  local name=$1
  shift
  if [ ! -f "$out/$name.json" ]; then
    local t0
    t0=$(date +%s.%N)
    $GM eval "$RUN" --metrics fid --n "$N" --seed 0 --json "$out/$name.json" "$@" >/dev/null
    echo "{\"seconds\": $(echo "$(date +%s.%N) - $t0" | bc)}" > "$out/$name.time.json"
  fi
  echo "$name"
}
names=()
if [ "$REF" = 1 ]; then names+=("$(fid ddpm-1000 --sampler ddpm --steps 1000)"); fi
for s in $SAMPLERS; do
  if [ "$s" = ode ]; then
    for tol in 1e-2 1e-3 1e-4; do
      names+=("$(fid "ode-tol$tol" --sampler ode --set sample.rtol=$tol --set sample.atol=$tol)")
    done
    continue
  fi
  for nfe in $NFES; do
    steps=$nfe
    case $s in heun | dpm++2s_a | pc) steps=$(( (nfe + 1) / 2 )) ;; esac
    if [ -n "$SCHEDULE" ] && [ "$s" != ddim ] && [ "$s" != ddpm ]; then
      names+=("$(fid "$s-$SCHEDULE-nfe$nfe" --sampler "$s" --steps "$steps" --schedule "$SCHEDULE")")
    else
      names+=("$(fid "$s-nfe$nfe" --sampler "$s" --steps "$steps")")
    fi
  done
done
/usr/bin/python3 - "$out" "${names[@]}" <<'PY'
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
rows = {}
print(f"{'sampler':<22} {'NFE':>5} {'FID':>8} {'s':>8}")
for name in names:
    j = json.load(open(os.path.join(out, name + ".json")))
    t = json.load(open(os.path.join(out, name + ".time.json")))["seconds"]
    fid = j["metrics"]["fid"]["value"]
    nfe = int(j.get("sample", {}).get("nfe", 0))
    rows[name] = {"fid": fid, "nfe": nfe, "seconds": t}
    print(f"{name:<22} {nfe:>5} {fid:8.2f} {t:8.0f}")
path = "bench/results/sampler_quality.json"
old = json.load(open(path)) if os.path.exists(path) else {}
if old.get("run") == os.path.dirname(out) and old.get("n") == int(os.environ.get("N", "2000")):
    old["rows"].update(rows)  # earlier invocations' rows (other samplers or grids) are kept
    rows = old["rows"]
json.dump({"n": int(os.environ.get("N", "2000")), "run": os.path.dirname(out), "rows": rows},
          open(path, "w"), indent=1)
PY
