#!/usr/bin/env bash
# partcli's main job on the built-in synthetic dataset, sized for a 2-core CPU (7.6–8.9 minutes there, measured).
# 1. clean pretraining of a bounding-box part model and a ResNet-18 baseline (paper §3.5.2),
# 2. short PGD adversarial training of both from those weights (Eqs. 8–9),
# 3. clean and PGD accuracy of all four checkpoints side by side on the test split.
# The budgets (1,000 images of 64 px, 12 + 2 epochs, PGD-3 while training) are CPU-sized: expect the figures of
# a smoke run, not the paper's; raise --n, --epochs and --steps on a GPU.
set -euo pipefail
OUT=${OUT:-quickstart}
COMMON=(--backbone resnet18 --image-size 64 --batch-size 32 --crop-scale 0.5 --overwrite)
PGD=(--adv pgd --eps 8/255 --step-size 3/255 --steps 3 --val-steps 5 --epochs 2)

partcli prepare synthetic --out "$OUT/data" --n 1000 --image-size 64 --overwrite
partcli info "$OUT/data"
partcli pretrain --data "$OUT/data" --arch bbox   --epochs 12 --lr 0.1  "${COMMON[@]}" --out "$OUT/runs/bbox-clean"
partcli pretrain --data "$OUT/data" --arch resnet --epochs 12 --lr 0.01 "${COMMON[@]}" --out "$OUT/runs/rn-clean"
partcli train --data "$OUT/data" --arch bbox   --lr 0.02  "${COMMON[@]}" "${PGD[@]}" \
    --init "$OUT/runs/bbox-clean/checkpoints/best.pt" --out "$OUT/runs/bbox-pgd"
partcli train --data "$OUT/data" --arch resnet --lr 0.005 "${COMMON[@]}" "${PGD[@]}" \
    --init "$OUT/runs/rn-clean/checkpoints/best.pt" --out "$OUT/runs/rn-pgd"
partcli info "$OUT/runs/bbox-pgd/checkpoints/best.pt"

rm -f "$OUT/results/attacks.csv"
for run in rn-clean bbox-clean rn-pgd bbox-pgd; do
  partcli -q attack --ckpt "$OUT/runs/$run/checkpoints/best.pt" --data "$OUT/data" --split test --suite pgd \
      --eps 8/255 --steps 20 --step-size 1/255 --restarts 1 --no-hygiene --out "$OUT/results/attacks.csv"
done
python - "$OUT/results/attacks.csv" <<'PY'
import sys
import pandas as pd
rows = pd.read_csv(sys.argv[1])
rows["model"] = rows["checkpoint"].str.extract(r"runs/([^/]+)/")[0]
table = rows.set_index("model")[["n", "clean_acc", "adv_acc"]].rename(
    columns={"clean_acc": "clean acc", "adv_acc": "PGD-20 acc (8/255)"})
print("\nTest split, clean vs PGD accuracy:\n" + (table * [1, 100, 100]).round(1).to_string())
PY
