#!/usr/bin/env bash
# partcli's main job on the built-in synthetic dataset, sized for a 2-core CPU.
# Clean pretraining of a bounding-box part model and a ResNet-18 baseline, evaluation, summaries.
set -euo pipefail
OUT=${OUT:-quickstart}
COMMON=(--backbone resnet18 --image-size 64 --batch-size 32 --lr 0.05 --workers 1 --overwrite)

partcli prepare synthetic --out "$OUT/data" --n 1500 --image-size 64 --overwrite
partcli info "$OUT/data"
partcli pretrain --data "$OUT/data" --arch bbox   --epochs 8 "${COMMON[@]}" --out "$OUT/runs/bbox-clean"
partcli pretrain --data "$OUT/data" --arch resnet --epochs 8 "${COMMON[@]}" --out "$OUT/runs/rn-clean"
partcli evaluate --ckpt "$OUT/runs/bbox-clean/checkpoints/best.pt" --data "$OUT/data" --split test --out "$OUT/results/evaluate.csv"
partcli evaluate --ckpt "$OUT/runs/rn-clean/checkpoints/best.pt" --data "$OUT/data" --split test --out "$OUT/results/evaluate.csv"
partcli info "$OUT/runs/bbox-clean/checkpoints/best.pt"
