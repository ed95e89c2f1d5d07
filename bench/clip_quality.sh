#!/usr/bin/env bash
# Quality recipe for CLIP (issue #17): `clip` on Fashion-MNIST captions for a time budget, then
# zero-shot classification of the whole test set with the training wording and with the held-out
# templates and synonyms, and image <-> caption recall@1/5 on 1,000 test images.
#   MINUTES=15 [RUN=runs/NAME] bench/clip_quality.sh [--set key=value ...]
# e.g. RUN=runs/clip-lexicon-15m bench/clip_quality.sh --set model.lexicon=/usr/share/wordnet
# A finished RUN is only scored again; the JSON goes to bench/results/clip_quality-NAME.json.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-15}
GM=${GM:-build/genmodels}
mkdir -p bench/results
run=${RUN:-runs/clip-quality-${MINUTES}m}
json=bench/results/clip_quality-$(basename "$run").json
if [ ! -f "$run/checkpoint.pt" ]; then
  $GM train clip --data fashion-mnist --minutes "$MINUTES" --out "$run" "$@"
fi
$GM eval "$run" --metrics zeroshot --n 10000 --json "$json" >/dev/null
python3 - "$json" "$run/metrics.jsonl" <<'PY'
import json, sys
z = json.load(open(sys.argv[1]))["zeroshot"]
steps = [json.loads(l) for l in open(sys.argv[2])][-1]["step"]
print(f"clip, {steps} steps, test n = {z['n']} (retrieval over {z['retrieval_n']} images)")
for k in ["zeroshot_accuracy_train_wording", "zeroshot_accuracy_held_out",
          "image_to_text_recall@1", "image_to_text_recall@5",
          "text_to_image_recall@1", "text_to_image_recall@5", "temperature"]:
    print(f"  {k:<34} {z[k]:.4f}")
PY
