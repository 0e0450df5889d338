"""The demo's bounding-box part model (examples/quickstart.sh) with each ``--bbox-score``, over several seeds.

Per seed: the quickstart's dataset (1,000 synthetic images of 64 px), its bbox clean stage (6 epochs, the first 3
segmenter-only, AdamW) and PGD stage (4 epochs of PGD-3), then clean and PGD-20 accuracy (8/255, step 1/255, one
restart) and part mIoU on the test split; once with ``--bbox-score logit`` (Eq. 1, the paper's code) and once with
``--bbox-score prob`` (partcli 0.1). Prints per-seed figures, mean ± 95 % CI per variant and metric, and Welch's
p-value of logit vs prob. Runs are skipped when their folder is complete, so an interrupted benchmark resumes.
About 5 minutes per seed and variant on a 2-core CPU.

    python benchmarks/bbox_score_seeds.py --seeds 0 1 2 --out /tmp/bbox-score
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
from scipy import stats

from demo_seeds import mean_ci  # benchmarks/demo_seeds.py: mean ± t-interval of one metric
from partcli import evaluate_checkpoint
from partcli.progress import set_quiet

from demo_recipe import ADV_EPOCHS, COMMON, DATA, PGD20 as ATTACK  # the quickstart's options
from demo_recipe import CLEAN as CLEAN_LR, CLEAN_EPOCHS, PGD as PGD_ADV

CLEAN = CLEAN_LR + CLEAN_EPOCHS["bbox"]  # after COMMON: the model's own options win
PGD = PGD_ADV + ADV_EPOCHS["bbox"]
SCORES = ("logit", "prob")


def partcli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "partcli", "-q", *args], check=True, stdout=subprocess.DEVNULL)


def run_variant(seed: int, score: str, data: Path, out: Path) -> dict[str, float]:
    """Clean + PGD stages and the PGD-20 attack for one seed and score (skipping what is already done)."""
    seed_opt = ["--seed", str(seed), "--bbox-score", score]
    clean, pgd, csv = out / "bbox-clean", out / "bbox-pgd", out / "attacks.csv"
    if not (clean / "checkpoints" / "best.pt").exists():
        partcli("pretrain", "--data", str(data), "--arch", "bbox", *COMMON, *CLEAN, *seed_opt, "--out", str(clean))
    if not (pgd / "checkpoints" / "best.pt").exists():
        partcli("train", "--data", str(data), "--arch", "bbox", *COMMON, *PGD, *seed_opt,
                "--init", str(clean / "checkpoints" / "best.pt"), "--out", str(pgd))
    if not csv.exists():
        for run in (clean, pgd):
            partcli("attack", "--ckpt", str(run / "checkpoints" / "best.pt"), "--data", str(data), *ATTACK,
                    "--out", str(csv))
    rows = pd.read_csv(csv).groupby("checkpoint").tail(1).set_index("checkpoint")
    result = {}
    for stage, run in (("clean", clean), ("pgd", pgd)):
        row = rows.loc[str(run / "checkpoints" / "best.pt")]
        result[f"{stage}-trained clean acc"] = 100 * row["clean_acc"]
        result[f"{stage}-trained PGD-20 acc"] = 100 * row["adv_acc"]
        result[f"{stage}-trained mIoU"] = 100 * evaluate_checkpoint(run / "checkpoints" / "best.pt", data, "test").miou
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("bbox-score-seeds"))
    args = parser.parse_args()
    set_quiet(True)
    rows = []
    for seed in args.seeds:
        data = args.out / f"seed{seed}" / "data"
        if not (data / "dataset.yaml").exists():
            partcli("prepare", "synthetic", "--out", str(data), *DATA, "--seed", str(seed), "--overwrite")
        for score in SCORES:
            rows.append({"seed": seed, "score": score,
                         **run_variant(seed, score, data, args.out / f"seed{seed}" / score)})
    table = pd.DataFrame(rows)
    print("per seed (%):\n" + table.round(1).to_string(index=False))
    metrics = [c for c in table.columns if c not in ("seed", "score")]
    summary = table.groupby("score")[metrics].agg(mean_ci).T
    logit, prob = (table[table["score"] == s] for s in SCORES)
    if len(args.seeds) > 1:
        summary["Welch p (logit vs prob)"] = [f"{stats.ttest_ind(logit[m], prob[m], equal_var=False).pvalue:.2f}"
                                              for m in metrics]
    print(f"\nmean ± 95 % CI over seeds {', '.join(map(str, args.seeds))} (%):\n{summary.to_string()}")


if __name__ == "__main__":
    main()
