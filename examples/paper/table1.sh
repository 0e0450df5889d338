#!/usr/bin/env bash
# One row of the paper's Table 1 for one dataset, on a GPU: for the ResNet-50 baseline and the downsampled and
# bounding-box part models, 50 clean epochs, 50 PGD epochs (PGD-10, 8/255, the authors' code's step 1/255), then
# AutoAttack and PGD on the test split (App. B). With BETAS="0.1 0.5 1.0" it also trains the TRADES points of Fig. 4.
#   examples/paper/table1.sh part-imagenet data/part-imagenet runs/table1      (prepare the dataset first)
# The recipes start from ImageNet weights (downloaded into the torch / Hugging Face caches on first use); other
# weights: PRETRAINED=none (from scratch) or PRETRAINED=/path/weights.pth. On N GPUs run it with
# PARTCLI="torchrun --nproc_per_node N -m partcli" and EXTRA_OPTIONS="--batch-size $((128 / N))" (128 in all).
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 part-imagenet|cityscapes|pascal-part PREPARED_DATA OUT" >&2
  exit 2
fi
DATASET=$1 DATA=$2 OUT=$3
HERE=$(cd "$(dirname "$0")" && pwd)
EXTRA=(${EXTRA_OPTIONS:-})
[ -n "${PRETRAINED:-}" ] && EXTRA+=(--pretrained "$PRETRAINED")
read -r -a RUN <<< "${PARTCLI:-partcli}"
for arch in resnet downsampled bbox; do
  cfg="$HERE/$DATASET-$arch.yaml"
  [ -f "$cfg" ] || { echo "no recipe $cfg" >&2; exit 2; }
  run="$OUT/$DATASET-$arch"
  "${RUN[@]}" pretrain --config "$cfg" --data "$DATA" --out "$run-clean" "${EXTRA[@]}"
  "${RUN[@]}" train --config "$cfg" --data "$DATA" --adv pgd --init "$run-clean/checkpoints/best.pt" --out "$run-pgd" \
      "${EXTRA[@]}"
  for beta in ${BETAS:-}; do
    "${RUN[@]}" train --config "$cfg" --data "$DATA" --adv trades --beta "$beta" \
        --init "$run-clean/checkpoints/best.pt" --out "$run-trades-$beta" "${EXTRA[@]}"
  done
  for trained in "$run"-pgd "$run"-trades-*; do
    [ -d "$trained" ] || continue
    partcli attack --ckpt "$trained/checkpoints/best.pt" --data "$DATA" --suite autoattack --out "$OUT/attacks.csv"
    partcli attack --ckpt "$trained/checkpoints/best.pt" --data "$DATA" --suite pgd --out "$OUT/attacks.csv"
  done
done
echo "results appended to $OUT/attacks.csv"
