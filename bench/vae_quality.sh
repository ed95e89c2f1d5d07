#!/usr/bin/env bash
# Sample quality of the VAE variants (issue #22) against the per-class full-covariance Gaussians of
# `qda` on the same evaluator: each variant trains for MINUTES (one at a time; the budget is wall
# time on this machine), then `genmodels eval` scores N samples (FID and class accuracy with the
# Fashion-MNIST evaluator; class-balanced for the conditional models and qda) and the IWAE-K test
# bound on NLL_N test images. Prints one table, writes bench/results/vae_quality.json.
#   MINUTES=15 N=10000 NLL_N=1000 bench/vae_quality.sh [variant ...]
# Variants: default (conv, class-conditional, a learned Gaussian prior per class), standard
# (N(0, I) prior), vamp (VampPrior, 100 pseudo-inputs), ladder (hierarchical), uncond (the
# unconditional VAE), and any name=key=value,...: e.g.
#   bench/vae_quality.sh "wide=model.channels=64,model.hidden=1024"
set -euo pipefail
cd "$(dirname "$0")/.."
GM=${GM:-build/genmodels}
MINUTES=${MINUTES:-15}
N=${N:-10000}
NLL_N=${NLL_N:-1000}
mkdir -p bench/results runs
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(default vamp ladder)

sets_of() {
  case "$1" in
    default) echo "" ;;
    standard) echo "model.prior=standard" ;;
    vamp) echo "model.prior=vamp,model.pseudo_inputs=100" ;;
    ladder) echo "model.arch=ladder" ;;
    uncond) echo "model.conditional=false" ;;
    *=*) echo "${1#*=}" ;;
    *) echo "unknown variant '$1' (default, vamp, ladder, uncond or name=key=value,...)" >&2; exit 2 ;;
  esac
}

qda=runs/vae-quality-qda
[ -f "$qda/checkpoint.pt" ] || $GM train qda --data fashion-mnist --out "$qda" --quiet
[ -f "$qda/quality.json" ] ||
  $GM eval "$qda" --n "$N" --metrics fid,acc --seed 0 --json "$qda/quality.json" --quiet >/dev/null

runs=()
for v in "${variants[@]}"; do
  name=${v%%=*}
  run=runs/vae-quality-$name-${MINUTES}m
  runs+=("$name:$run")
  if [ ! -f "$run/checkpoint.pt" ]; then
    args=()
    IFS=, read -r -a kv <<<"$(sets_of "$v")"
    for s in "${kv[@]}"; do [ -n "$s" ] && args+=(--set "$s"); done
    $GM train vae --data fashion-mnist --minutes "$MINUTES" --out "$run" --quiet "${args[@]}"
  fi
  [ -f "$run/quality.json" ] ||
    $GM eval "$run" --n "$N" --metrics fid,acc --seed 0 --json "$run/quality.json" --quiet >/dev/null
  [ -f "$run/nll.json" ] ||
    $GM eval "$run" --metrics nll --n "$NLL_N" --k 1000 --seed 0 --json "$run/nll.json" \
      --quiet >/dev/null
done

/usr/bin/python3 - "$qda" "${runs[@]}" <<'PY'
import json, os, sys
qda = json.load(open(os.path.join(sys.argv[1], "quality.json")))
def metric(j, key):
    v = j.get("metrics", {}).get(key)
    return v.get("value") if isinstance(v, dict) else v
base = metric(qda, "fid")
out = {"qda": {"fid": base, "class_accuracy": metric(qda, "class_accuracy")}}
print(f"{'model':<22} {'steps':>7} {'FID':>8} {'vs qda':>8} {'class acc':>10} {'nll bits/dim':>13}")
print(f"{'qda (Gaussians)':<22} {'-':>7} {base:8.2f} {'1.00x':>8} {out['qda']['class_accuracy'] or float('nan'):10.3f} {'-':>13}")
for spec in sys.argv[2:]:
    name, run = spec.split(":", 1)
    q = json.load(open(os.path.join(run, "quality.json")))
    n = json.load(open(os.path.join(run, "nll.json")))
    fid = metric(q, "fid")
    lk = n.get("likelihood", n)
    bpd = lk.get("bits_per_dim")
    se = lk.get("bits_per_dim_stderr")
    steps = q.get("checkpoint_step", "?")
    out[name] = {"run": run, "fid": fid, "fid_vs_qda": fid / base,
                 "class_accuracy": metric(q, "class_accuracy"), "bits_per_dim": bpd,
                 "bits_per_dim_stderr": se, "steps": steps}
    bpd_s = f"{bpd:.3f}" + (f" ± {se:.3f}" if se else "") if bpd else "-"
    print(f"{name:<22} {steps!s:>7} {fid:8.2f} {fid / base:7.2f}x "
          f"{out[name]['class_accuracy'] or float('nan'):10.3f} {bpd_s:>13}")
json.dump(out, open("bench/results/vae_quality.json", "w"), indent=1)
PY
