#!/usr/bin/env bash
# Quality recipe for the score-based family (issue #16): train `ncsn`, `sde` (vp, subvp) and `ddpm`
# with Improved DDPM's learned variances on Fashion-MNIST for the main job's wall-clock budget
# (default 15 minutes each, one at a time: the budget is CPU time), then score each on the same
# seeded N samples (default 2,000; FID depends on N) with the #4 evaluator, at the model's own
# sampler and at a common fast one (dpm++2m_sde, 25 steps), and its test bits/dim (the ODE
# likelihood, and the variational bound for ddpm) on the first NLL_N test images, beside the
# main job's run (runs/fmnist-quality-15m) when it exists.
#   MINUTES=15 N=2000 NLL_N=200 [TABLE_ONLY=1] bench/score_quality.sh [NAME ...]
# NAME is one of ncsn, sde-vp, sde-subvp, ddpm-learned (default all); results are cached per run
# in RUN/score-quality/*.json (TABLE_ONLY=1 prints what is cached, "-" for the rest). Prints the
# table and the denoising error by noise level (x0 MSE per dimension at common sigmas, from the
# nll evaluation) and writes bench/results/score_quality.json.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-15}
N=${N:-2000}
NLL_N=${NLL_N:-200}
GM=${GM:-build/genmodels}
NAMES=${*:-"ncsn sde-vp sde-subvp ddpm-learned"}
TABLE_ONLY=${TABLE_ONLY:-0}
mkdir -p bench/results

train_args() {  # name -> model and settings
  case $1 in
    ncsn) echo "ncsn" ;;
    sde-vp) echo "sde --set model.sde=vp" ;;
    sde-subvp) echo "sde --set model.sde=subvp" ;;
    ddpm-learned) echo "ddpm --set diffusion.learn_sigma=true" ;;
    main) echo "" ;;
    *) echo "unknown name $1 (valid: ncsn sde-vp sde-subvp ddpm-learned)" >&2; exit 2 ;;
  esac
}
# The model's own sampler at a cost that fits a bench (NFE per sample in the table).
own_sampler() {
  case $1 in
    ncsn) echo "--sampler langevin" ;;                       # L levels x 5 steps + 1
    sde-*) echo "--sampler pc --steps 250" ;;                 # Euler-Maruyama, 250 levels
    ddpm-learned) echo "--sampler ddpm --steps 100" ;;        # learned variances, respaced
    main) echo "--sampler ddim --steps 50" ;;
  esac
}

# Every run is trained before any is scored, so the timed budgets never share the CPU.
for name in $NAMES; do
  run=runs/score-quality-$name-${MINUTES}m
  if [ "$TABLE_ONLY" = 0 ] && [ ! -f "$run/checkpoint.pt" ]; then
    # shellcheck disable=SC2046
    $GM train $(train_args "$name") --data fashion-mnist --minutes "$MINUTES" --out "$run"
  fi
done

score() {  # run, tag, then sample flags
  local run=$1 tag=$2
  shift 2
  mkdir -p "$run/score-quality"
  local j=$run/score-quality/fid-$tag-n$N.json
  [ -f "$j" ] || [ "$TABLE_ONLY" = 1 ] ||
    $GM eval "$run" --metrics fid --n "$N" --seed 0 --json "$j" "$@" >/dev/null
}
runs=()
for name in $NAMES main; do
  run=runs/score-quality-$name-${MINUTES}m
  [ "$name" = main ] && run=runs/fmnist-quality-${MINUTES}m
  [ -f "$run/checkpoint.pt" ] || continue
  # shellcheck disable=SC2046
  score "$run" own $(own_sampler "$name")
  score "$run" fast --sampler dpm++2m_sde --steps 25
  j=$run/score-quality/nll-n$NLL_N.json
  [ -f "$j" ] || [ "$TABLE_ONLY" = 1 ] ||
    $GM eval "$run" --metrics nll --n "$NLL_N" --seed 0 --json "$j" >/dev/null
  runs+=("$name|$run")
done

/usr/bin/python3 - "$N" "$NLL_N" "${runs[@]}" <<'PY'
import json, os, sys
n, nll_n, rows = sys.argv[1], sys.argv[2], sys.argv[3:]
out = {"n": int(n), "nll_n": int(nll_n), "runs": {}}


def load(path):
    return json.load(open(path)) if os.path.exists(path) else None


fmt = lambda v, w=7, p=2: f"{v:{w}.{p}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"
print(f"{'model':<14} {'own sampler':<26} {'NFE':>5} {'FID':>7} | {'fast (25)':>9} {'FID':>7} | "
      f"{'ODE bpd':>7} {'VLB bpd':>7} {'ODE NFE':>7}")
denoise = {}
for row in rows:
    name, run = row.split("|")
    d = os.path.join(run, "score-quality")
    own, fast = load(os.path.join(d, f"fid-own-n{n}.json")), load(os.path.join(d, f"fid-fast-n{n}.json"))
    nll = (load(os.path.join(d, f"nll-n{nll_n}.json")) or {}).get("likelihood", {})
    s = (own or {}).get("sample", {})
    label = f"{s.get('sampler', '?')} {s.get('steps', '')}".strip() if own else "-"
    fid = lambda j: j["metrics"]["fid"]["value"] if j else None
    nfe = lambda j: int(j.get("sample", {}).get("nfe", 0)) if j else None
    r = {"run": run, "own": {"sampler": label, "nfe": nfe(own), "fid": fid(own)},
         "fast": {"nfe": nfe(fast), "fid": fid(fast)},
         "bits_per_dim_ode": nll.get("bits_per_dim"), "bits_per_dim_vlb": nll.get("vlb_bits_per_dim"),
         "nfe_per_image_ode": nll.get("nfe_per_image"), "denoise_mse": nll.get("denoise_mse")}
    out["runs"][name] = r
    if r["denoise_mse"]:
        # levels clamped into a model's range (0.0100005 for ncsn) group with the nominal one
        denoise[name] = {float(f"{e['sigma']:.3g}"): e["mse_x0"] for e in r["denoise_mse"]}
    print(f"{name:<14} {label:<26} {fmt(r['own']['nfe'], 5, 0)} {fmt(r['own']['fid'])} | "
          f"{fmt(r['fast']['nfe'], 9, 0)} {fmt(r['fast']['fid'])} | {fmt(r['bits_per_dim_ode'], 7, 3)} "
          f"{fmt(r['bits_per_dim_vlb'], 7, 3)} {fmt(r['nfe_per_image_ode'], 7, 0)}")
if denoise:
    sig = sorted({s for t in denoise.values() for s in t})
    print("\ndenoising error: x0 MSE per dimension at sigma (200 test images)")
    print(f"{'model':<14} " + " ".join(f"{s:>7g}" for s in sig))
    for name, t in denoise.items():
        print(f"{name:<14} " + " ".join(fmt(t.get(s), 7, 4) for s in sig))
json.dump(out, open("bench/results/score_quality.json", "w"), indent=1)
PY
