#!/usr/bin/env bash
# Test bits/dim across families (issue #16's table): trains `glow` (15 minutes), `realnvp` and `vae`
# (10 minutes each, the README's commands; one at a time, the budget is CPU time) on Fashion-MNIST
# and evaluates their test likelihood (flows: the exact density on all 10,000 dequantised test
# images; VAE: the IWAE-1000 bound on the first 1,000), beside the diffusion and score models'
# probability-flow ODE likelihood and ddpm's variational bound from bench/score_quality.sh (its
# RUN/score-quality/nll-nNLL_N.json; run that first). Bits/dim follow metrics/bits_per_dim.h.
#   NLL_N=100 [TABLE_ONLY=1] bench/likelihood_quality.sh
# Prints one table and writes bench/results/likelihood_quality.json.
set -euo pipefail
cd "$(dirname "$0")/.."
GM=${GM:-build/genmodels}
NLL_N=${NLL_N:-100}
TABLE_ONLY=${TABLE_ONLY:-0}
mkdir -p bench/results

declare -A minutes=([glow]=15 [realnvp]=10 [vae]=10)
for m in glow realnvp vae; do
  run=runs/lik-quality-$m-${minutes[$m]}m
  [ "$TABLE_ONLY" = 1 ] && continue
  [ -f "$run/checkpoint.pt" ] ||
    $GM train "$m" --data fashion-mnist --minutes "${minutes[$m]}" --out "$run"
done
for m in glow realnvp vae; do
  run=runs/lik-quality-$m-${minutes[$m]}m
  [ "$TABLE_ONLY" = 1 ] || [ ! -f "$run/checkpoint.pt" ] || [ -f "$run/nll.json" ] && continue
  if [ "$m" = vae ]; then
    $GM eval "$run" --metrics nll --n 1000 --k 1000 --seed 0 --json "$run/nll.json" >/dev/null
  else
    $GM eval "$run" --metrics nll --seed 0 --json "$run/nll.json" >/dev/null
  fi
done

/usr/bin/python3 - "$NLL_N" <<'PY'
import json, os, sys
nll_n = sys.argv[1]
rows = [("glow", "runs/lik-quality-glow-15m/nll.json", "exact (flow)"),
        ("realnvp", "runs/lik-quality-realnvp-10m/nll.json", "exact (flow)"),
        ("vae", "runs/lik-quality-vae-10m/nll.json", "IWAE-1000 bound")]
for name in ["sde-vp", "sde-subvp", "ncsn", "ddpm-learned"]:
    rows.append((name, f"runs/score-quality-{name}-15m/score-quality/nll-n{nll_n}.json", "ode"))
rows.append(("main (ddpm)", f"runs/fmnist-quality-15m/score-quality/nll-n{nll_n}.json", "ode"))
out = {}
print(f"{'model':<14} {'estimate':<34} {'test images':>11} {'bits/dim':>9}")
for name, path, kind in rows:
    if not os.path.exists(path):
        print(f"{name:<14} {'(not evaluated: ' + path + ')'}")
        continue
    lk = json.load(open(path))["likelihood"]
    entries = [(kind if kind != "ode" else "probability-flow ODE", lk.get("bits_per_dim"))]
    if kind == "ode" and lk.get("vlb_bits_per_dim") is not None:
        entries.append(("variational bound (all T terms)", lk["vlb_bits_per_dim"]))
    for label, bpd in entries:
        print(f"{name:<14} {label:<34} {lk.get('n', 0):>11} {bpd:9.3f}")
        out.setdefault(name, {})[label] = {"bits_per_dim": bpd, "n": lk.get("n")}
json.dump(out, open("bench/results/likelihood_quality.json", "w"), indent=1)
PY
