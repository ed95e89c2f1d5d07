#!/usr/bin/env bash
# The long version of tests/cli/reliability_test.cpp (issue #19): a real Fashion-MNIST ddpm run
# (small U-Net: 32 channels, two levels; 2,000 steps, a checkpoint every 10, checkpoint writes
# slowed by 200 ms) is killed with SIGKILL KILLS times at random moments and resumed with the
# same command each time; every checkpoint left behind must load (a 1-image sample), and the
# finished run must draw exactly the samples of an uninterrupted run (cmp of the .npy files).
#   KILLS=100 bench/kill_resume.sh
set -euo pipefail
cd "$(dirname "$0")/.."
GM=${GM:-build/genmodels}
KILLS=${KILLS:-100}
MODEL=${MODEL:-ddpm}
tmp=$(mktemp -d /tmp/kill_resume.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
args=(train "$MODEL" --data fashion-mnist --steps 2000 --seed 4 --set train.checkpoint_every=10
      --set train.batch_size=32)
[ "$MODEL" = ddpm ] && args+=(--set model.base_channels=32 --set model.channel_mult=1,1
                             --set model.attention_levels=)
$GM "${args[@]}" --out "$tmp/ref" >/dev/null 2>&1
kills=0 loads=0
while [ "$kills" -lt "$KILLS" ]; do
  if [ -f "$tmp/run/checkpoint.pt" ]; then cmd=("$GM" train --resume --out "$tmp/run")
  else cmd=("$GM" "${args[@]}" --out "$tmp/run"); fi
  GM_FAULT_SLOW_WRITE_MS=200 "${cmd[@]}" >/dev/null 2>&1 &
  pid=$!
  sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.5 + 4.5 * r / 32767 }')"
  if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; break; fi
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true
  kills=$((kills + 1))
  if [ -f "$tmp/run/checkpoint.pt" ]; then
    $GM sample "$tmp/run" --n 1 --out "$tmp/probe" >/dev/null 2>&1 || { echo "kill $kills: checkpoint does not load"; exit 1; }
    loads=$((loads + 1))
  fi
done
$GM train --resume --out "$tmp/run" >/dev/null 2>&1
for r in ref run; do $GM sample "$tmp/$r" --n 64 --seed 1 --npy "$tmp/$r.npy" --out "$tmp/$r.out" >/dev/null 2>&1; done
if cmp -s "$tmp/ref.npy" "$tmp/run.npy"; then same=true; else same=false; fi
echo "kills: $kills, checkpoints loaded after a kill: $loads, final samples bit-identical: $same"
mkdir -p bench/results
echo "{\"model\": \"$MODEL\", \"kills\": $kills, \"loaded\": $loads, \"identical\": $same}" > "bench/results/kill_resume_$MODEL.json"
$same
