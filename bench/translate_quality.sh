#!/usr/bin/env bash
# Quality recipe for image-to-image translation (issue #14): pix2pix on fmnist-edges (edge map ->
# item) for a 15-minute budget and CycleGAN sneaker <-> ankle boot (fashion-mnist:7 <->
# fashion-mnist:9) for 30 minutes, then `genmodels translate` over the test splits, scored with
# the Fashion-MNIST evaluator: L1 / PSNR to the true items, class accuracy (pix2pix: the source's
# class; CycleGAN: the share classified as the target class), cycle L1, FID against the targets.
# Prints one table; the translate.json files are copied to bench/results/.
#   P2P_MINUTES=15 CG_MINUTES=30 bench/translate_quality.sh [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
P2P_MINUTES=${P2P_MINUTES:-15}
CG_MINUTES=${CG_MINUTES:-30}
GM=${GM:-build/genmodels}
mkdir -p bench/results
p2p=runs/translate-pix2pix-edges-${P2P_MINUTES}m
cg=runs/translate-cyclegan-7-9-${CG_MINUTES}m
if [ ! -f "$p2p/checkpoint.pt" ]; then
  $GM train pix2pix --data fmnist-edges --minutes "$P2P_MINUTES" --out "$p2p" "$@"
fi
$GM translate "$p2p" --input fmnist-edges --grid-only --out "$p2p/test" >/dev/null
cp "$p2p/test/translate.json" bench/results/translate_pix2pix_edges.json
if [ ! -f "$cg/checkpoint.pt" ]; then
  $GM train cyclegan --data fashion-mnist:7 --data-b fashion-mnist:9 --minutes "$CG_MINUTES" \
    --out "$cg" "$@"
fi
$GM translate "$cg" --input fashion-mnist:7 --direction AtoB --grid-only --out "$cg/AtoB" >/dev/null
$GM translate "$cg" --input fashion-mnist:9 --direction BtoA --grid-only --out "$cg/BtoA" >/dev/null
cp "$cg/AtoB/translate.json" bench/results/translate_cyclegan_sneaker_to_boot.json
cp "$cg/BtoA/translate.json" bench/results/translate_cyclegan_boot_to_sneaker.json
python3 - "$p2p/test/translate.json" "$cg/AtoB/translate.json" "$cg/BtoA/translate.json" <<'PY'
import json, sys
names = ["pix2pix edges -> item", "cyclegan sneaker -> boot", "cyclegan boot -> sneaker"]
print(f"{'task':<26} {'n':>6} {'L1':>7} {'PSNR':>7} {'class acc':>10} {'cycle L1':>9} {'FID':>8} {'img/s':>8}")
for name, path in zip(names, sys.argv[1:]):
    m = json.load(open(path))
    g = lambda k: m.get(k, float("nan"))
    print(f"{name:<26} {m['n']:>6} {g('l1'):7.4f} {g('psnr'):7.2f} {g('class_accuracy'):10.3f} "
          f"{g('cycle_l1'):9.4f} {g('fid'):8.2f} {m['n'] / max(m['seconds'], 1e-9):8.0f}")
PY
