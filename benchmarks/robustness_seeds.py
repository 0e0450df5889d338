"""Non-adversarial robustness of ResNet-18 vs the bbox part model over seeds (paper §5.1, Tables 2–4), on the
synthetic set with the demo's clean recipe (examples/quickstart.sh's pretrain lines).

Per seed S: ``prepare synthetic --n N --image-size 64 --seed S``, clean pretraining of the bbox part model (6
epochs, the first 3 segmenter-only) and of ResNet-18 (8 epochs) with AdamW, warm-up 1 epoch, lr 2e-3, then
``robustness --suite all`` on both best checkpoints, appended to ``OUT/results/robustness.csv``. At the end it
prints ``partcli compare --by arch``: accuracy on the corruption mean and the foreground sets, the BG-gap, the
cue-conflict shape accuracy and shape bias, and the clean accuracy, each mean ± 95 % CI over the seeds with
Welch's p. Steps already done (a seed's dataset, a run's best.pt, a checkpoint's rows) are skipped, so an
interrupted benchmark continues.

    python benchmarks/robustness_seeds.py --out /tmp/robustness-seeds                # the full benchmark
    python benchmarks/robustness_seeds.py --n 100 --epochs-scale 0.1 --seeds 0 1      # a quick check of the plumbing

Each seed varies both the dataset and the training (as ``SEED`` does in the demo); ``compare`` pools the seeds'
datasets by their name (``synthetic``).
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

RECIPE = {"bbox": (6, 3), "resnet": (8, 0)}  # (clean epochs, segmenter-only epochs), examples/quickstart.sh
COMMON = ["--backbone", "resnet18", "--image-size", "64", "--batch-size", "32", "--crop-scale", "0.5", "--optim",
          "adamw", "--wd", "0.01", "--lr", "2e-3"]
REPORTS = [  # (metric, attack globs): the compare tables printed at the end
    ("acc", ["mean", "only-fg", "only-bg", "mixed-same", "mixed-rand", "cue-conflict"]),
    ("bg_gap", ["bg-gap"]),
    ("shape_bias", ["cue-conflict"]),
    ("clean_acc", ["mean"]),
]


def partcli(*args: str, capture: bool = False) -> str:
    """Run ``python -m partcli ARGS`` (wide tables; stderr returned when ``capture``)."""
    env = {**os.environ, "COLUMNS": "160", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "partcli", *args], env=env, check=True, text=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if capture else None)
    return done.stderr if capture else ""


def rows_for(csv_path: Path, ckpt: Path) -> int:
    if not csv_path.exists():
        return 0
    with csv_path.open(newline="") as fh:
        return sum(row["checkpoint"] == str(ckpt) for row in csv.DictReader(fh))


def run_seed(seed: int, out: Path, n: int, epochs_scale: float, device: str, results: Path) -> None:
    data = out / f"seed{seed}" / "data"
    if not (data / "dataset.yaml").exists():
        partcli("-q", "prepare", "synthetic", "--out", str(data), "--n", str(n), "--image-size", "64", "--seed",
                str(seed), "--overwrite")
    for arch, (epochs, seg_only) in RECIPE.items():
        epochs = max(1, round(epochs * epochs_scale))
        seg_only = min(epochs - 1, round(seg_only * epochs_scale))
        run = out / f"seed{seed}" / "runs" / f"{arch}-clean"
        ckpt = run / "checkpoints" / "best.pt"
        start = time.perf_counter()
        if not ckpt.exists():
            partcli("-q", "pretrain", "--data", str(data), "--arch", arch, "--epochs", str(epochs), "--warmup-epochs",
                    str(min(1, epochs - 1)), "--seg-only-epochs", str(seg_only), "--seed", str(seed), "--device",
                    device, *COMMON, "--overwrite", "--out", str(run))
        if rows_for(results, ckpt) == 0:
            partcli("-q", "robustness", "--ckpt", str(ckpt), "--data", str(data), "--suite", "all", "--seed",
                    str(seed), "--device", device, "--out", str(results), capture=True)  # tables: see compare
        print(f"seed {seed} {arch}: {time.perf_counter() - start:.0f} s", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=1000, help="images per synthetic set (the demo: 1000)")
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="multiplies the recipe's epochs (at least 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", type=Path, default=Path("robustness-seeds"))
    args = parser.parse_args()
    results = args.out / "results" / "robustness.csv"
    start = time.perf_counter()
    for seed in args.seeds:
        run_seed(seed, args.out, args.n, args.epochs_scale, args.device, results)
    print(f"trained and evaluated in {time.perf_counter() - start:.0f} s; {results}\n", file=sys.stderr)
    for metric, attacks in REPORTS:
        filters = [a for attack in attacks for a in ("--attack", attack)]
        print(partcli("compare", str(results), "--by", "arch", "--metric", metric, "--ref", "resnet", *filters,
                      "--out", str(args.out / "results" / f"compare-{metric}.csv"), capture=True))


if __name__ == "__main__":
    main()
