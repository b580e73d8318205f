#!/usr/bin/env bash
# Trains (or resumes) a shipped default model, StyA2K or (second argument `neat`) NeAT, on the device
# machine, with the recipe of weights/README.md at GPU scale. The device machine has no network and no Rust toolchain, so:
#   here:    bash weights/dataset.sh "$PWD/.dataset" && bash benches/gpu/build.sh
#            (carry .dataset and .gpu-bundle; a previous run's checkpoints travel in .train-default)
#   device:  bash benches/gpu/train_default.sh [STEPS] [stya2k|neat]
#            carry [".gpu-bundle", ".dataset", ".train-default"] (".train-default-neat" for neat)
# Checkpoints rotate in $OUT/train-default[-neat] (returned by the device tool); copy them back into
# .train-default[-neat] to resume in the next session: --resume continues from the newest readable one
# with the same step, optimizer state and data order.
set -euo pipefail
cd "$(dirname "$0")/../.."
steps="${1:-40000}"
model="${2:-stya2k}"
bin=.gpu-bundle/stylestream
[ -x "$bin" ] || { gunzip -kf "$bin.gz" && chmod +x "$bin"; }
case "$model" in
  stya2k) name=train-default ;;
  neat) name=train-default-neat ;;
  *) echo "train_default.sh: model must be stya2k or neat, not $model" >&2; exit 2 ;;
esac
run="${OUT:-/tmp}/$name"
mkdir -p "$run"
[ -d ".$name" ] && cp -n ".$name"/* "$run/" 2>/dev/null || true
resume=()
ls "$run"/step-*.safetensors >/dev/null 2>&1 && resume=(--resume)
common=(--device cuda --content .dataset/train/content --style .dataset/train/style -o "$run"
  --encoder random:20261206 --seed 20261206 --steps "$steps" --batch 8 --load-size 512 --crop 256 --lr 2e-4
  --checkpoint-every 1000 --keep 2 --sample-every 1000 "${resume[@]}" --overwrite)
if [ "$model" = stya2k ]; then
  # 256 crops of 512 loads, batch 8: the official recipe; lr 2e-4 and its step decay over STEPS; the pixel
  # terms of the CPU-trained default (range 10, colour 100, reconstruction 100), which a random encoder needs.
  "$bin" train "${common[@]}" --lambda-range 10 --lambda-colour 100 --lambda-reconstruct 100
else
  # NeAT with the paper's full objective; one PAMA block, so that it fits the 50 MB of weights/ beside StyA2K.
  "$bin" train --model neat "${common[@]}" --pama-blocks 1
fi
ls -l "$run"
