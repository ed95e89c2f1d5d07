#!/usr/bin/env bash
# Data-parallel figures (issue #18). On this machine: img/s of the main job's U-Net train step
# (ddpm on Fashion-MNIST, global batch 128) with 1 process x 2 threads against 2 processes x
# 1 thread (`--nproc 2`, Gloo on loopback), and the share of a step the ranks wait for the
# gradient all-reduce after the backward pass (the part hooks could not overlap). Then the
# measured all-reduce cost (bench/allreduce_bench) at the model's gradient size, and a paper
# estimate of scaling to 8 and 64 machines at 10 and 100 Gb/s (ring all-reduce).
#   STEPS=60 bench/ddp_bench.sh
# Needs an idle machine (it times). Writes bench/results/ddp_bench.json.
set -euo pipefail
cd "$(dirname "$0")/.."
GM=${GM:-build/genmodels}
AR=${AR:-build/allreduce_bench}
STEPS=${STEPS:-60}
tmp=$(mktemp -d /tmp/ddp_bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p bench/results
common=(--data fashion-mnist --steps "$STEPS" --set train.log_every=10
        --set train.checkpoint_every=0)
$GM train ddpm "${common[@]}" --threads 2 --out "$tmp/one" 2>"$tmp/one.log" >/dev/null
$GM train ddpm "${common[@]}" --nproc 2 --threads 1 --out "$tmp/two" 2>"$tmp/two.log" >/dev/null
params=$(grep -o '[0-9]* parameters' "$tmp/one.log" | head -1 | cut -d' ' -f1)
grad_bytes=$((params * 4))
$AR --json "$tmp/ar.json" --bytes "4096,$grad_bytes,$((1 << 20)),$((16 << 20))" >/dev/null 2>&1
/usr/bin/python3 - "$tmp" "$params" <<'PY'
import json, statistics, sys
tmp, params = sys.argv[1], int(sys.argv[2])
def rows(run):
    return [json.loads(l) for l in open(f"{tmp}/{run}/metrics.jsonl")][1:]  # first: warm-up
one, two = rows("one"), rows("two")
batch = 128
ips1 = statistics.median(r["img_per_s"] for r in one)
ips2 = statistics.median(r["img_per_s"] for r in two)
step2_ms = 1000 * batch / ips2
wait_ms = statistics.median(r["dist_wait_ms"] for r in two)
ar = json.load(open(f"{tmp}/ar.json"))["rows"]
g = next(r for r in ar if r["bytes"] == 4 * params)
small = min(ar, key=lambda r: r["bytes"])
lat_s = small["ms"] / 1000 / 2  # per hop: a 4 KB all-reduce on 2 ranks takes 2 hops
print(f"{'configuration':<34} {'img/s':>8} {'step ms':>9} {'wait ms':>8} {'wait %':>7}")
print(f"{'1 process x 2 threads':<34} {ips1:8.1f} {1000 * batch / ips1:9.1f}")
print(f"{'2 processes x 1 thread (Gloo)':<34} {ips2:8.1f} {step2_ms:9.1f} {wait_ms:8.2f} "
      f"{100 * wait_ms / step2_ms:6.2f}%")
print(f"gradient {4 * params / 1e6:.2f} MB: all-reduce {g['ms']:.2f} ms alone on loopback "
      f"({g['busbw_gbs']:.2f} GB/s bus bandwidth) = {100 * g['ms'] / step2_ms:.2f}% of a step")
# Paper estimate: every machine computes a per-machine batch of 128 at this machine's speed
# (1 process x 2 threads); the ring all-reduce of G bytes over n machines takes
# 2 (n - 1) / n * G / B + 2 (n - 1) * latency at link bandwidth B.
compute_s = batch / ips1
est = []
print(f"\n{'machines':>8} {'link':>9} {'all-reduce ms':>14} {'compute ms':>11} "
      f"{'efficiency (no overlap)':>24} {'(full overlap)':>15}")
for gbps in (10, 100):
    for n in (2, 8, 64, 512):
        bw = gbps / 8 * 1e9
        t = 2 * (n - 1) / n * 4 * params / bw + 2 * (n - 1) * max(lat_s, 25e-6)
        e0, e1 = compute_s / (compute_s + t), compute_s / max(compute_s, t)
        est.append({"machines": n, "gbps": gbps, "allreduce_ms": 1000 * t,
                    "compute_ms": 1000 * compute_s, "efficiency_no_overlap": e0,
                    "efficiency_full_overlap": e1})
        print(f"{n:8d} {gbps:>6} Gb/s {1000 * t:14.2f} {1000 * compute_s:11.1f} {e0:24.3f} "
              f"{e1:15.3f}")
out = {"bench": "ddp", "params": params, "gradient_bytes": 4 * params, "global_batch": batch,
       "one_process_two_threads_img_per_s": ips1, "two_processes_one_thread_img_per_s": ips2,
       "two_process_step_ms": step2_ms, "dist_wait_ms": wait_ms,
       "dist_wait_share": wait_ms / step2_ms, "allreduce_ms_at_gradient_size": g["ms"],
       "allreduce_share_of_step": g["ms"] / step2_ms, "allreduce": ar, "estimate": est}
json.dump(out, open("bench/results/ddp_bench.json", "w"), indent=1)
print("wrote bench/results/ddp_bench.json")
PY
