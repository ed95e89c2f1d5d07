#!/usr/bin/env bash
# Sampler quality recipe (issue #15): FID (the Fashion-MNIST evaluator, #4) of every sampler at
# NFE = 10, 20, 50 on one trained main-job run, all on the same seeded N samples (FID depends on
# the sample count: compare only at equal N), beside 1000-step ancestral DDPM (about an hour for
# 2,000 samples here: computed once and cached in RUN/sampler-fid-nN/ddpm-1000.json; REF=0
# skips it). Each row keeps its finished sample batches (RUN/sampler-fid-nN/ROW.batches/) until
# it is done, so a sweep that is stopped resumes where it was, even in the middle of a row (its
# seconds then count only the last part).
#   RUN=runs/fmnist-quality-15m N=2000 NFES="10 20 50" [SCHEDULE=discrete|karras|exponential] \
#     [SIGMA_MAX=80] [PRECISION=bf16] bench/sampler_sweep.sh [SAMPLER ...]
# SIGMA_MAX clamps the sigma samplers' grid; entering it from the model's prior costs one of the
# NFE, so those rows run one step fewer.
# PRECISION=bf16 samples every row (the reference too) under bf16 autocast, about 2x faster here,
# and keeps its rows apart (RUN/sampler-fid-nN-bf16/, sampler_sweep-RUNNAME-bf16.json).
# Steps per NFE: 2 evaluations per step for heun and dpm++2s_a (the last step takes 1), 2 for pc
# (1 corrector step); ode is adaptive and runs at rtol = atol = 1e-2, 1e-3, 1e-4 instead.
# Prints one table; writes bench/results/sampler_sweep-RUNNAME.json (rows accumulate over
# invocations on the same run and N) and the FID-vs-NFE plot bench/results/sampler_sweep-RUNNAME.svg
# (one line per sampler and grid, log-scaled NFE, the DDPM-1000 FID as a dashed line).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/fmnist-quality-15m}
N=${N:-2000}
NFES=${NFES:-"10 20 50"}
GM=${GM:-build/genmodels}
SAMPLERS=${*:-"ddim euler heun euler_a lms dpm++2m dpm++2m_sde dpm++2s_a unipc pc ode"}
PRECISION=${PRECISION:-}  # empty: the run's own model.precision
tag=${PRECISION:+-$PRECISION}  # the cache directory's and the results file's suffix
out=$RUN/sampler-fid-n$N$tag
prec=()
if [ -n "$PRECISION" ]; then prec=(--precision "$PRECISION"); fi
REF=${REF:-1}  # 0: skip the 1000-step DDPM reference
SCHEDULE=${SCHEDULE:-}  # a sample.schedule for the sigma samplers (default: the run's)
SIGMA_MAX=${SIGMA_MAX:-}  # a sample.sigma_max for the sigma samplers (one NFE enters the grid)
mkdir -p "$out" bench/results
fid() {  # name, then sample flags
  local name=$1
  shift
  if [ ! -f "$out/$name.json" ]; then
    local t0
    t0=$(date +%s.%N)
    # Finished batches are kept until the row is done: an interrupted sweep resumes mid-row.
    $GM eval "$RUN" --metrics fid --n "$N" --seed 0 --json "$out/$name.json" "${prec[@]}" \
      --keep-batches "$out/$name.batches" "$@" >/dev/null
    rm -rf "$out/$name.batches"
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
    name=$s
    flags=()
    if [ "$s" != ddim ] && [ "$s" != ddpm ]; then
      if [ -n "$SCHEDULE" ]; then name+=-$SCHEDULE; flags+=(--schedule "$SCHEDULE"); fi
      if [ -n "$SIGMA_MAX" ]; then
        name+=-smax$SIGMA_MAX
        flags+=(--set "sample.sigma_max=$SIGMA_MAX")
        steps=$((nfe - 1))  # the step from the model's prior into the clamped grid
      fi
    fi
    case $s in heun | dpm++2s_a | pc) steps=$(( (steps + 1) / 2 )) ;; esac
    names+=("$(fid "$name-nfe$nfe" --sampler "$s" --steps "$steps" "${flags[@]}")")
  done
done
/usr/bin/python3 - "$out" "$tag" "${names[@]}" <<'PY'
import json, os, sys
out, tag, names = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = {}
print(f"{'sampler':<22} {'NFE':>5} {'FID':>8} {'s':>8}")
for name in names:
    j = json.load(open(os.path.join(out, name + ".json")))
    t = json.load(open(os.path.join(out, name + ".time.json")))["seconds"]
    fid = j["metrics"]["fid"]["value"]
    nfe = int(j.get("sample", {}).get("nfe", 0))
    rows[name] = {"fid": fid, "nfe": nfe, "seconds": t}
    print(f"{name:<22} {nfe:>5} {fid:8.2f} {t:8.0f}")
run = os.path.dirname(out)
n = int(os.environ.get("N", "2000"))
base = "bench/results/sampler_sweep-" + os.path.basename(run.rstrip("/")) + tag
old = json.load(open(base + ".json")) if os.path.exists(base + ".json") else {}
if old.get("run") == run and old.get("n") == n:
    old["rows"].update(rows)  # earlier invocations' rows (other samplers or grids) are kept
    rows = old["rows"]
json.dump({"n": n, "run": run, "rows": rows}, open(base + ".json", "w"), indent=1)

# The plot: hand-written SVG (no plotting package needed).
import math, re
series = {}
ref = None
for name, r in rows.items():
    if name.startswith("ddpm-"):
        ref = r["fid"]
        continue
    key = re.sub(r"-nfe\d+$", "", name)
    key = re.sub(r"-tol[0-9e.-]+$", "", key)
    series.setdefault(key, []).append((r["nfe"], r["fid"]))
W, H, L, B = 720, 460, 60, 50
pts = [p for v in series.values() for p in v if p[0] > 0]
if pts:
    xs = [math.log10(p[0]) for p in pts]
    x0, x1 = math.floor(min(xs)), math.ceil(max(xs) + 1e-9)
    ymax = min(max([p[1] for p in pts] + [ref or 0]) * 1.05, 4 * (ref or 50))
    X = lambda nfe: L + (math.log10(nfe) - x0) / max(x1 - x0, 1e-9) * (W - L - 170)
    Y = lambda f: H - B - min(f, ymax) / ymax * (H - B - 20)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
              "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aa4499", "#44aa99", "#882255"]
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="14">FID ({n} samples) vs NFE per sample: {run}</text>',
           f'<line x1="{L}" y1="{H-B}" x2="{W-170}" y2="{H-B}" stroke="black"/>',
           f'<line x1="{L}" y1="{H-B}" x2="{L}" y2="20" stroke="black"/>']
    for e in range(x0, x1 + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if x0 <= math.log10(v) <= x1:
                svg.append(f'<text x="{X(v):.1f}" y="{H-B+16}" text-anchor="middle">{v:g}</text>')
    for k in range(6):
        f = ymax * k / 5
        svg.append(f'<text x="{L-6}" y="{Y(f)+4:.1f}" text-anchor="end">{f:.0f}</text>')
    svg.append(f'<text x="{(W-170+L)/2}" y="{H-12}" text-anchor="middle">NFE (log scale)</text>')
    if ref:
        svg.append(f'<line x1="{L}" y1="{Y(ref):.1f}" x2="{W-170}" y2="{Y(ref):.1f}" stroke="black" stroke-dasharray="6,4"/>')
        svg.append(f'<text x="{W-165}" y="{Y(ref)+4:.1f}">DDPM-1000 {ref:.1f}</text>')
    for i, (key, v) in enumerate(sorted(series.items())):
        v = sorted(p for p in v if p[0] > 0)
        c = colors[i % len(colors)]
        d = " ".join(f"{X(a):.1f},{Y(b):.1f}" for a, b in v)
        svg.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="2"/>')
        for a, b in v:
            svg.append(f'<circle cx="{X(a):.1f}" cy="{Y(b):.1f}" r="3" fill="{c}"/>')
        svg.append(f'<text x="{W-160}" y="{40 + 16*i}" fill="{c}">{key}</text>')
    svg.append("</svg>")
    open(base + ".svg", "w").write("\n".join(svg) + "\n")
    print("wrote", base + ".json", "and", base + ".svg")
PY
