#!/usr/bin/env bash
# Flows against the per-class full-covariance Gaussians of `qda` (issue #22): each variant trains
# for MINUTES on Fashion-MNIST (one at a time; the budget is wall time on this machine), then
# `genmodels eval` scores N samples at each temperature of TEMPS (FID and class accuracy with the
# Fashion-MNIST evaluator) and the test bits/dim (exact flow density of the dequantised test set,
# importance-weighted over K dequantisation draws; all 10,000 test images unless NLL_N is set).
# The qda row is shared with bench/vae_quality.sh (runs/vae-quality-qda). Prints one table and
# writes bench/results/flow_quality.json.
#   MINUTES=15 N=10000 TEMPS="0.7 1.0" K=1 bench/flow_quality.sh [variant ...]
# A variant is a model name (glow, realnvp), glow-vd / realnvp-vd (variational dequantisation,
# Flow++), or name=model[,key=value...]: e.g.
#   bench/flow_quality.sh "glow-narrow=glow,model.hidden=64,model.steps=12"
# MINUTES=60 bench/flow_quality.sh glow-vd is the 60-minute recipe.
set -euo pipefail
cd "$(dirname "$0")/.."
GM=${GM:-build/genmodels}
MINUTES=${MINUTES:-15}
N=${N:-10000}
TEMPS=${TEMPS:-"0.7 1.0"}
K=${K:-1}
NLL_N=${NLL_N:-10000}
mkdir -p bench/results runs
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(glow glow-vd)

spec_of() {
  case "$1" in
    glow | realnvp) echo "$1" ;;
    glow-vd | realnvp-vd) echo "${1%-vd},model.dequantization=variational" ;;
    *=*) echo "${1#*=}" ;;
    *) echo "unknown variant '$1' (glow, realnvp, glow-vd, realnvp-vd or name=model,key=value,...)" >&2
       exit 2 ;;
  esac
}

qda=runs/vae-quality-qda
[ -f "$qda/checkpoint.pt" ] || $GM train qda --data fashion-mnist --out "$qda" --quiet
[ -f "$qda/quality.json" ] ||
  $GM eval "$qda" --n "$N" --metrics fid,acc --seed 0 --json "$qda/quality.json" --quiet >/dev/null

runs=()
for v in "${variants[@]}"; do
  name=${v%%=*}
  run=runs/flow-quality-$name-${MINUTES}m
  runs+=("$name:$run")
  IFS=, read -r -a kv <<<"$(spec_of "$v")"
  if [ ! -f "$run/checkpoint.pt" ]; then
    args=()
    for s in "${kv[@]:1}"; do [ -n "$s" ] && args+=(--set "$s"); done
    $GM train "${kv[0]}" --data fashion-mnist --minutes "$MINUTES" --out "$run" --quiet "${args[@]}"
  fi
  for t in $TEMPS; do
    [ -f "$run/quality-t$t.json" ] ||
      $GM eval "$run" --n "$N" --metrics fid,acc --temperature "$t" --seed 0 \
        --json "$run/quality-t$t.json" --quiet >/dev/null
  done
  [ -f "$run/nll-k$K.json" ] ||
    $GM eval "$run" --metrics nll --n "$NLL_N" --k "$K" --seed 0 --json "$run/nll-k$K.json" \
      --quiet >/dev/null
done

/usr/bin/python3 - "$qda" "$K" "$TEMPS" "${runs[@]}" <<'PY'
import json, os, sys
qda_dir, k, temps, specs = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4:]
def metric(j, key):
    v = j.get("metrics", {}).get(key)
    return v.get("value") if isinstance(v, dict) else v
qda = json.load(open(os.path.join(qda_dir, "quality.json")))
base = metric(qda, "fid")
out = {"qda": {"fid": base, "class_accuracy": metric(qda, "class_accuracy")}}
cols = "".join(f" {'FID T=' + t:>10} {'acc':>6}" for t in temps)
print(f"{'model':<20} {'steps':>7}{cols} {'best vs qda':>11} {'bits/dim':>14}")
print(f"{'qda (Gaussians)':<20} {'-':>7}" + f" {base:10.2f} {out['qda']['class_accuracy']:6.3f}" * len(temps)
      + f" {'1.00x':>11} {'-':>14}")
for spec in specs:
    name, run = spec.split(":", 1)
    row = {"run": run, "temperatures": {}}
    cells = ""
    for t in temps:
        q = json.load(open(os.path.join(run, f"quality-t{t}.json")))
        row["steps"] = q.get("sample", {}).get("checkpoint_step", "?")
        # class accuracy needs labelled (class-conditional) samples
        fid, acc = metric(q, "fid"), metric(q, "class_accuracy")
        row["temperatures"][t] = {"fid": fid, "class_accuracy": acc}
        cells += f" {fid:10.2f} " + (f"{acc:6.3f}" if acc is not None else f"{'-':>6}")
    best = min(v["fid"] for v in row["temperatures"].values())
    row["best_fid_vs_qda"] = best / base
    lk = json.load(open(os.path.join(run, f"nll-k{k}.json")))
    lk = lk.get("likelihood", lk)
    row["bits_per_dim"], row["bits_per_dim_stderr"] = lk.get("bits_per_dim"), lk.get("bits_per_dim_stderr")
    row["nll_estimate"] = lk.get("dequantization")
    se = row["bits_per_dim_stderr"]
    bpd = f"{row['bits_per_dim']:.3f}" + (f" ± {se:.3f}" if se else "")
    print(f"{name:<20} {row['steps']!s:>7}{cells} {best / base:10.2f}x {bpd:>14}")
    out[name] = row
json.dump(out, open("bench/results/flow_quality.json", "w"), indent=1)
PY
