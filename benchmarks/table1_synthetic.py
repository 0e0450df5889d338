"""Table 1 and Fig. 4 of the paper in miniature, on the synthetic dataset: both halves of its claim, with AutoAttack.

Per seed: a synthetic dataset with the demo's 800 training images, 100 validation images and a 500-image test
split (a per-seed accuracy then has a binomial s.e. ≤ 2.3 points); the demo's clean stage for the ResNet-18
baseline and the bounding-box part model (examples/quickstart.sh, ``demo_recipe``); from those weights the demo's
PGD stage and TRADES at each ``--beta`` (the same epochs, learning rate and PGD-3 inner attack); then for every
trained model AutoAttack (the standard version; with 5 classes partcli's C − 1 target classes) at 8/255 on the
test split, and the test mIoU of the part models. It prints per seed and as mean ± 95 % CI (t interval): clean and
AutoAttack accuracy per training and model; for the PGD half, Welch's p of part model vs baseline; for the TRADES
half, per baseline β the part model's β at matched clean accuracy (the paper's rule: the part model whose clean
accuracy is closest to the baseline's from above, else the closest) and Welch's p of their AutoAttack accuracy.

Everything is written as partcli's own files under ``--out`` (datasets and run folders per seed,
``results/attacks.csv`` and ``results/evaluate.csv``), so ``partcli report`` draws Table 1 with ± CI and the
trade-off figure with error bars from it. A finished stage is skipped, an interrupted training resumes
(``--resume``) and AutoAttack resumes per attack, so the benchmark can be killed and restarted at any time. On a
2-core CPU AutoAttack would take days per seed (Square and FAB-T on every surviving image of 8 models);
``--attack pgd20`` measures robust accuracy with the demo's PGD-20 instead (about 2–5 min per model there), and
every table then names that column "PGD-20 acc". ``--smoke`` runs every stage on a few 32-px images in a minute,
with a 2-step PGD in place of AutoAttack (its numbers mean nothing; a slow test, `pytest -m slow`, runs it).

    python benchmarks/table1_synthetic.py --seeds 0 1 2 --out runs/t1 --beta 1 3 6
    python benchmarks/table1_synthetic.py --seeds 0 1 2 --out runs/t1-cpu --beta 1 6 --attack pgd20   # on a CPU
    partcli report runs/t1 --out report/
"""
from __future__ import annotations

import argparse
import contextlib
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from scipy import stats

from demo_recipe import ADV_EPOCHS, CLEAN, CLEAN_EPOCHS, COMMON, PGD, PGD20
from demo_seeds import mean_ci  # mean ± t-interval half-width of one metric over seeds
from partcli.cli import app
from partcli.progress import set_quiet

MODELS = ("resnet", "bbox")  # the ResNet-18 baseline and the bounding-box part model
TRADES = ["--adv", "trades", *PGD[2:]]  # the PGD stage's radius, inner attack and lr; the loss is Eq. 10


@dataclass(frozen=True)
class RobustAttack:
    """The robust-accuracy command: its options, the start of its rows' ``attack`` cell and its column's name."""

    args: tuple[str, ...]
    cell: str  # with 5 classes AutoAttack's rows name the C − 1 targets after "autoattack"
    column: str


ATTACKS = {
    "autoattack": RobustAttack(("--split", "test", "--suite", "autoattack", "--eps", "8/255"), "autoattack",
                               "AutoAttack acc"),
    # the demo's PGD-20 (one restart): what a 2-core CPU can afford on 500 images per model (AutoAttack: days)
    "pgd20": RobustAttack(tuple(PGD20), "pgd", "PGD-20 acc"),
}


@dataclass(frozen=True)
class Scale:
    """Dataset size and the per-command overrides of one benchmark scale."""

    n_train: int
    n_val: int
    n_test: int
    image_size: int
    overrides: tuple[str, ...] = ()  # appended to every training command (later options win)
    attack_args: tuple[str, ...] | None = None  # replace the chosen attack's options (its name stays)


FULL = Scale(800, 100, 500, 64)
# --smoke: every stage in about a minute; AutoAttack's Square alone would take minutes on any surviving image, so a
# 2-step PGD stands in for either attack (the column keeps the chosen attack's name: a smoke run's numbers mean nothing)
SMOKE = Scale(40, 10, 20, 32, ("--image-size", "32", "--epochs", "1", "--warmup-epochs", "0", "--seg-only-epochs", "0",
                              "--batch-size", "16"),
              ("--split", "test", "--suite", "pgd", "--eps", "8/255", "--steps", "2", "--restarts", "1",
               "--no-hygiene", "--n-samples", "10"))


def partcli(*args: str) -> None:
    """Run one partcli command in this process; its result tables go to stderr, so stdout holds only the benchmark's."""
    with contextlib.redirect_stdout(sys.stderr):
        code = app(args=["-q", *args], standalone_mode=False)
    if code not in (None, 0):
        raise SystemExit(f"partcli {' '.join(args[:2])} exited with {code}")


def run_is_finished(run: Path) -> bool:
    """Whether the run folder holds a best.pt and one metrics row per planned epoch."""
    metrics, config = run / "metrics.csv", run / "config.yaml"
    if not (run / "checkpoints" / "best.pt").exists() or not metrics.exists() or not config.exists():
        return False
    return len(pd.read_csv(metrics)) >= int(yaml.safe_load(config.read_text())["epochs"])


def train(command: str, run: Path, *args: str) -> None:
    """Train unless finished; continue an interrupted run with ``--resume``."""
    if run_is_finished(run):
        return
    if (run / "checkpoints" / "last.pt").exists():
        partcli(command, "--resume", "--out", str(run))
    else:
        partcli(command, *args, "--out", str(run))


def rows_of(csv: Path, checkpoint: Path, attack: str | None = None) -> pd.DataFrame:
    """The checkpoint's rows of a results CSV, only those whose ``attack`` cell starts with ``attack`` if given."""
    if not csv.exists():
        return pd.DataFrame()
    rows = pd.read_csv(csv)
    rows = rows[rows["checkpoint"] == str(checkpoint)]
    return rows[rows["attack"].str.startswith(attack)] if attack else rows


def run_seed(seed: int, betas: list[float], out: Path, scale: Scale, attack: RobustAttack) -> pd.DataFrame:
    """Every stage of one seed (skipping what is done) and its rows: one per (training, model)."""
    root, results = out / f"seed{seed}", out / "results"
    data = root / "data"
    if not (data / "dataset.yaml").exists():
        n = scale.n_train + scale.n_val + scale.n_test
        partcli("prepare", "synthetic", "--out", str(data), "--n", str(n), "--n-val", str(scale.n_val),
                "--n-test", str(scale.n_test), "--image-size", str(scale.image_size), "--seed", str(seed),
                "--overwrite")
    common = [*COMMON, "--seed", str(seed), "--data", str(data)]
    trainings = {"pgd": PGD, **{f"trades β={b:g}": [*TRADES, "--beta", f"{b:g}"] for b in betas}}
    rows = []
    for model in MODELS:
        clean = root / "runs" / f"{model}-clean"
        train("pretrain", clean, "--arch", model, *common, *CLEAN, *CLEAN_EPOCHS[model], *scale.overrides)
        for training, adv in trainings.items():
            run = root / "runs" / f"{model}-{training.replace(' β=', '-beta')}"
            train("train", run, "--arch", model, *common, *adv, *ADV_EPOCHS[model], *scale.overrides,
                  "--init", str(clean / "checkpoints" / "best.pt"))
            rows.append(evaluate(run / "checkpoints" / "best.pt", data, results, attack)
                        | {"seed": seed, "training": training, "model": model})
    return pd.DataFrame(rows, columns=["seed", "training", "model", "clean acc", attack.column, "mIoU"])


def evaluate(ckpt: Path, data: Path, results: Path, attack: RobustAttack) -> dict[str, float]:
    """The attack and evaluate rows of one checkpoint (run unless the results CSVs hold them) as table cells."""
    attacks, clean = results / "attacks.csv", results / "evaluate.csv"
    aa = rows_of(attacks, ckpt, attack.cell)
    if aa.empty:
        partcli("attack", "--ckpt", str(ckpt), "--data", str(data), *attack.args, "--out", str(attacks))
        aa = rows_of(attacks, ckpt, attack.cell)
    ev = rows_of(clean, ckpt)
    if ev.empty:
        partcli("evaluate", "--ckpt", str(ckpt), "--data", str(data), "--split", "test", "--out", str(clean))
        ev = rows_of(clean, ckpt)
    aa, ev = aa.iloc[-1], ev.iloc[-1]
    return {"clean acc": 100 * ev["clean_acc"], attack.column: 100 * aa["adv_acc"],  # clean: the whole test split
            "mIoU": 100 * ev["miou"] if pd.notna(ev.get("miou")) else math.nan}


def welch_p(a: pd.Series, b: pd.Series) -> str:
    """Welch's two-sided p-value of two per-seed samples ("–" with fewer than two seeds each)."""
    if min(len(a.dropna()), len(b.dropna())) < 2:
        return "–"
    return f"{stats.ttest_ind(a, b, equal_var=False).pvalue:.2f}"


def summary(table: pd.DataFrame, robust: str) -> pd.DataFrame:
    """Mean ± 95 % CI over seeds per (training, model); ``robust`` names the robust-accuracy column."""
    metrics = ["clean acc", robust, "mIoU"]
    out = table.groupby(["training", "model"], sort=False)[metrics].agg(mean_ci)
    out.insert(0, "seeds", table.groupby(["training", "model"], sort=False)["seed"].nunique())
    return out


def pgd_half(table: pd.DataFrame, robust: str) -> pd.DataFrame:
    """PGD training: part model vs baseline, Welch's p per metric (the paper's first half: clean gain, robust par)."""
    pgd = table[table["training"] == "pgd"]
    base, part = (pgd[pgd["model"] == m] for m in MODELS)
    return pd.DataFrame([{"metric": m, "ResNet-18": mean_ci(base[m]), "bbox part model": mean_ci(part[m]),
                          "Welch p": welch_p(part[m], base[m])} for m in ("clean acc", robust)])


def matched_pairs(table: pd.DataFrame, robust: str) -> pd.DataFrame:
    """TRADES: per baseline β, the part model's β at matched clean accuracy and their robust accuracy."""
    attack = robust.removesuffix(" acc")
    trades = table[table["training"].str.startswith("trades")]
    means = trades.groupby(["training", "model"])["clean acc"].mean()
    rows = []
    for training in trades["training"].unique():
        base_clean = means.get((training, "resnet"))
        candidates = {t: c for (t, m), c in means.items() if m == "bbox"}
        if base_clean is None or not candidates:
            continue
        above = {t: c for t, c in candidates.items() if c >= base_clean}
        pool = above or candidates
        match = min(pool, key=lambda t: abs(pool[t] - base_clean))
        base = trades[(trades["training"] == training) & (trades["model"] == "resnet")]
        part = trades[(trades["training"] == match) & (trades["model"] == "bbox")]
        rows.append({"baseline": training, "part model": match, "clean (baseline / part)":
                     f"{mean_ci(base['clean acc'])} / {mean_ci(part['clean acc'])}",
                     f"{attack} (baseline / part)": f"{mean_ci(base[robust])} / {mean_ci(part[robust])}",
                     f"Welch p ({attack})": welch_p(part[robust], base[robust])})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--beta", type=float, nargs="+", default=[1.0, 3.0, 6.0], help="TRADES β values (Eq. 10)")
    parser.add_argument("--out", type=Path, default=Path("table1-synthetic"))
    parser.add_argument("--attack", choices=sorted(ATTACKS), default="autoattack",
                        help="robust accuracy by AutoAttack (standard version; GPU-sized) or the demo's PGD-20")
    parser.add_argument("--smoke", action="store_true", help="a minute-long run of every stage (numbers mean nothing)")
    args = parser.parse_args(argv)
    set_quiet(True)
    scale = SMOKE if args.smoke else FULL
    attack = ATTACKS[args.attack]
    if scale.attack_args is not None:
        attack = RobustAttack(scale.attack_args, "pgd", attack.column)
    table = pd.concat([run_seed(s, args.beta, args.out.resolve(), scale, attack) for s in args.seeds],
                      ignore_index=True)
    print("per seed, test split (%):\n" + table.round(1).to_string(index=False, na_rep="–"))
    print(f"\nmean ± 95 % CI over seeds {', '.join(map(str, args.seeds))} (%):\n"
          + summary(table, attack.column).to_string(na_rep="–"))
    print("\nPGD training, part model vs baseline:\n" + pgd_half(table, attack.column).to_string(index=False))
    pairs = matched_pairs(table, attack.column)
    if not pairs.empty:
        print("\nTRADES at matched clean accuracy:\n" + pairs.to_string(index=False))


if __name__ == "__main__":
    main()
