#!/usr/bin/env bash
# Quality recipe for text-to-image diffusion (issue #17): a `ddpm` conditioned on a clip run's
# text features (model.text_encoder) for a time budget on Fashion-MNIST captions, then for every
# class two prompts in held-out wording (templates and synonyms no training caption used), N
# samples each: the share the Fashion-MNIST evaluator assigns to the prompted class, FID of all
# prompted samples against the test set, and the CLIP score of the samples (class prompts).
#   CLIP=runs/clip-quality-15m-bf16 RUN=runs/text2image-15m MINUTES=15 N=150 GUIDANCE=3 STEPS=25 \
#     bench/text2image_quality.sh [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-15}
N=${N:-150}
GUIDANCE=${GUIDANCE:-3}
STEPS=${STEPS:-25}
CLIP=${CLIP:-runs/clip-quality-15m}
GM=${GM:-build/genmodels}
mkdir -p bench/results
if [ ! -f "$CLIP/checkpoint.pt" ]; then
  MINUTES=15 bench/clip_quality.sh
  CLIP=runs/clip-quality-15m
fi
run=${RUN:-runs/text2image-${MINUTES}m}
if [ ! -f "$run/checkpoint.pt" ]; then
  $GM train ddpm --data fashion-mnist --minutes "$MINUTES" --out "$run" \
    --set "model.text_encoder=$CLIP" "$@"
fi
# Every held-out synonym of every class (clip/captions.cpp), each in a held-out template (the
# five templates in turn): two prompts per class, none of them ever a training caption.
prompts=("a snapshot of a tee shirt" "this is a jersey top"
  "a low-resolution image of a pair of jeans" "a centred photo showing a pair of long pants"
  "a knitted sweatshirt, photographed from above" "a snapshot of a woollen knit"
  "this is a sundress" "a low-resolution image of a one-piece dress"
  "a centred photo showing a parka" "a winter coat, photographed from above"
  "a snapshot of a strappy summer shoe" "this is a slide sandal"
  "a low-resolution image of a dress shirt" "a centred photo showing a collared shirt"
  "a running shoe, photographed from above" "a snapshot of a tennis shoe"
  "this is a tote" "a low-resolution image of a shoulder bag"
  "a centred photo showing a chelsea boot" "a short leather boot, photographed from above")
out=$run/prompted
mkdir -p "$out"
for i in "${!prompts[@]}"; do
  $GM sample "$run" --prompt "${prompts[$i]}" --n "$N" --seed "$i" --guidance "$GUIDANCE" \
    --steps "$STEPS" --out "$out/$i" --npy "$out/$i.npy" >/dev/null
  /usr/bin/python3 -c "import numpy as np, sys; np.save(sys.argv[1], np.full($N, $i // 2, np.int64))" \
    "$out/$i.labels.npy"
  $GM eval "$out/$i.npy" --metrics acc --json "$out/$i.json" >/dev/null
done
/usr/bin/python3 - "$out" "${#prompts[@]}" <<'PY'
import sys, numpy as np
out, k = sys.argv[1], int(sys.argv[2])
np.save(f"{out}/all.npy", np.concatenate([np.load(f"{out}/{i}.npy") for i in range(k)]))
np.save(f"{out}/all.labels.npy",
        np.concatenate([np.load(f"{out}/{i}.labels.npy") for i in range(k)]))
PY
$GM eval "$out/all.npy" --metrics fid,acc,clip_score --clip "$CLIP" --n $((${#prompts[@]} * N)) \
  --json "$out/eval.json" >/dev/null
python3 - "$out" "$run/metrics.jsonl" "$GUIDANCE" "$CLIP" "${prompts[@]}" <<'PY'
import json, sys
out, log, guidance, clip, prompts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
e = json.load(open(f"{out}/eval.json"))
steps = [json.loads(l) for l in open(log)][-1]["step"]
per_prompt = [json.load(open(f"{out}/{i}.json"))["metrics"]["class_accuracy"]["value"]
              for i in range(len(prompts))]
m = e["metrics"]
print(f"text-to-image ddpm, {steps} steps, text encoder {clip}, guidance {guidance}, "
      f"{e['n']} samples ({e['n'] // len(prompts)} per held-out prompt)")
for i, (p, a) in enumerate(zip(prompts, per_prompt)):
    print(f"  class {i // 2}  {p:<48} class match {a:.3f}")
print(f"  class match (all) {m['class_accuracy']['value']:.4f}   FID {m['fid']['value']:.2f}   "
      f"CLIP score {m['clip_score']['value']:.2f} (clip run's class prompts)")
json.dump({"steps": steps, "guidance": float(guidance), "text_encoder": clip,
           "prompts": prompts, "class_match_per_prompt": per_prompt, "eval": e},
          open("bench/results/text2image_quality.json", "w"), indent=1)
PY
