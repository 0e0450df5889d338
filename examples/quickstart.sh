#!/usr/bin/env bash
# partcli's main job on the built-in synthetic dataset, sized for a 2-core CPU (see README for measured times).
# 1. clean pretraining of a bounding-box part model and a ResNet-18 baseline (paper §3.5.2), from scratch; the part
#    model's first 3 epochs train its segmenter alone (--seg-only-epochs: from step 0 the classification loss would
#    dominate the from-scratch segmenter's gradient and leave it drawing class-coloured blobs, mIoU ~11 %), in
#    batches of 16 (twice the steps of 32 for about 8 % more time: test mIoU 47 % instead of 33 %, docs/training.md),
# 2. short PGD adversarial training of both from those weights (Eqs. 8–9),
# 3. clean and PGD-20 accuracy of all four checkpoints on the test split, plus the part models' mIoU.
# The budgets (1,000 images of 64 px, a few epochs, PGD-3 while training) are CPU-sized; the paper's recipes for
# GPUs are in examples/paper/. AdamW with a one-epoch warm-up trains the from-scratch segmenter in minutes
# (SGD, the paper's optimiser, needs ImageNet-initialised encoders or far more steps).
# Environment: OUT (output folder, default quickstart), SEED (dataset and training seed, default 0).
set -euo pipefail
OUT=${OUT:-quickstart}
SEED=${SEED:-0}
COMMON=(--backbone resnet18 --image-size 64 --batch-size 32 --crop-scale 0.5 --seed "$SEED" --optim adamw
        --wd 0.01 --overwrite)
CLEAN=(--warmup-epochs 1 --lr 2e-3)
PGD=(--adv pgd --eps 8/255 --step-size 3/255 --steps 3 --val-steps 5 --lr 1.5e-3)

partcli prepare synthetic --out "$OUT/data" --n 1000 --image-size 64 --seed "$SEED" --overwrite
partcli info "$OUT/data"
# each model's own options come last (they override COMMON's)
partcli pretrain --data "$OUT/data" --arch bbox   "${COMMON[@]}" "${CLEAN[@]}" --epochs 6 --seg-only-epochs 3 --batch-size 16 \
    --out "$OUT/runs/bbox-clean"
partcli pretrain --data "$OUT/data" --arch resnet "${COMMON[@]}" "${CLEAN[@]}" --epochs 8 --out "$OUT/runs/rn-clean"
partcli train --data "$OUT/data" --arch bbox   "${COMMON[@]}" "${PGD[@]}" --epochs 4 \
    --init "$OUT/runs/bbox-clean/checkpoints/best.pt" --out "$OUT/runs/bbox-pgd"
partcli train --data "$OUT/data" --arch resnet "${COMMON[@]}" "${PGD[@]}" --epochs 4 \
    --init "$OUT/runs/rn-clean/checkpoints/best.pt" --out "$OUT/runs/rn-pgd"
partcli info "$OUT/runs/bbox-pgd/checkpoints/best.pt"

for run in rn-clean bbox-clean rn-pgd bbox-pgd; do
  partcli -q attack --ckpt "$OUT/runs/$run/checkpoints/best.pt" --data "$OUT/data" --split test --suite pgd \
      --eps 8/255 --steps 20 --step-size 1/255 --restarts 1 --no-hygiene --out "$OUT/results/attacks.csv" > /dev/null
  partcli -q evaluate --ckpt "$OUT/runs/$run/checkpoints/best.pt" --data "$OUT/data" --split test \
      --out "$OUT/results/evaluate.csv" > /dev/null   # clean accuracy, and the part models' mIoU
done
python - "$OUT" <<'PY'
import sys
from pathlib import Path

import pandas as pd

out = Path(sys.argv[1])
rows = pd.read_csv(out / "results" / "attacks.csv").groupby("checkpoint").tail(1)  # this run's row per checkpoint
clean = pd.read_csv(out / "results" / "evaluate.csv").groupby("checkpoint").tail(1).set_index("checkpoint")
rows["model"] = rows["checkpoint"].str.extract(r"runs/([^/]+)/")[0]
rows["miou"] = clean.loc[rows["checkpoint"], "miou"].to_numpy()
table = rows.set_index("model")[["n", "clean_acc", "adv_acc", "miou"]] * [1, 100, 100, 100]
table.columns = ["n", "clean acc", "PGD-20 acc (8/255)", "part mIoU"]
print("\nTest split (%):\n" + table.round(1).to_string(na_rep="–"))
PY

# 4. one page of tables and figures from all of the above: Table 1, training curves, trade-off (the figure in docs/reports.md)
partcli report "$OUT/results" "$OUT/runs" --out "$OUT/report"
echo "report: $OUT/report/index.md"
