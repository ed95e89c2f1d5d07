#!/usr/bin/env bash
# Quality recipe for CLIP guidance (issue #17): a noise-conditional clip run (model.noised_share)
# steers a diffusion run that was never told about text (its unconditional half) toward each
# class prompt; the Fashion-MNIST evaluator says how often the samples are the prompted class, at
# each guidance scale (scale 0 = unguided: the class's share of unconditional samples, ~0.1).
#   RUN=runs/fmnist-quality-15m CLIP=runs/clip-noised-15m-bf16 N=100 STEPS=25 SCALES="0 3 10" \
#     bench/clip_guidance_quality.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/fmnist-quality-15m}
CLIP=${CLIP:-runs/clip-noised-15m}
N=${N:-100}
STEPS=${STEPS:-25}
SCALES=${SCALES:-0 3 10}
GM=${GM:-build/genmodels}
mkdir -p bench/results
if [ ! -f "$CLIP/checkpoint.pt" ]; then
  $GM train clip --data fashion-mnist --minutes 15 --set model.noised_share=0.5 --out "$CLIP"
fi
# The clip run's class prompts (training wording: this measures the image side).
prompts=("a photo of a t-shirt" "a photo of a pair of trousers" "a photo of a pullover"
  "a photo of a dress" "a photo of a coat" "a photo of a sandal" "a photo of a shirt"
  "a photo of a sneaker" "a photo of a bag" "a photo of an ankle boot")
out=$RUN/clip-guided
mkdir -p "$out"
for s in $SCALES; do
  for k in "${!prompts[@]}"; do
    f=$out/s${s}_$k
    $GM sample "$RUN" --prompt "${prompts[$k]}" --clip "$CLIP" --clip-guidance "$s" --n "$N" \
      --seed "$k" --steps "$STEPS" --out "$f" --npy "$f.npy" >/dev/null
    /usr/bin/python3 -c "import numpy as np, sys; np.save(sys.argv[1], np.full($N, $k, np.int64))" \
      "$f.labels.npy"
    $GM eval "$f.npy" --metrics acc --json "$f.json" >/dev/null
  done
done
python3 - "$out" "$RUN" "$CLIP" "$SCALES" "${prompts[@]}" <<'PY'
import json, sys
out, run, clip, scales, prompts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(), sys.argv[5:]
table = {}
for s in scales:
    table[s] = [json.load(open(f"{out}/s{s}_{k}.json"))["metrics"]["class_accuracy"]["value"]
                for k in range(len(prompts))]
print(f"CLIP guidance of {run} by {clip}: share of samples the evaluator puts in the prompted class")
print(f"  {'prompt':<32}" + "".join(f"{'scale ' + s:>10}" for s in scales))
for k, p in enumerate(prompts):
    print(f"  {p:<32}" + "".join(f"{table[s][k]:10.3f}" for s in scales))
print(f"  {'mean':<32}" + "".join(f"{sum(table[s]) / len(prompts):10.3f}" for s in scales))
json.dump({"run": run, "clip": clip, "prompts": prompts, "class_match": table},
          open("bench/results/clip_guidance_quality.json", "w"), indent=1)
PY
