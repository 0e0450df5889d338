"""``partcli compare``: mean ± 95 % CI over seeds and Welch's t-test, checked against numbers worked out by hand."""
from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from partcli.checkpoint import save_checkpoint
from partcli.evaluate.compare import compare_results, mean_ci, welch_p
from partcli.evaluate.results_csv import append_results
from partcli.robustness.suite import ROBUSTNESS_COLUMNS

A = [0.80, 0.82, 0.84]  # mean 0.82, sd 0.02
B = [0.70, 0.75, 0.71, 0.72]  # mean 0.72, squared deviations 4e-4 + 9e-4 + 1e-4 + 0 = 1.4e-3, variance 1.4e-3 / 3
# 95 % t intervals: t(0.975, 2) = 4.302653 (tables: 4.303), t(0.975, 3) = 3.182446 (tables: 3.182)
HALF_A = 4.302653 * 0.02 / math.sqrt(3)  # 0.049683
HALF_B = 3.182446 * math.sqrt(1.4e-3 / 3) / 2  # 0.034374
# Welch: s² = 4e-4/3 + (1.4e-3/3)/4 = 2.5e-4, t = 0.10 / sqrt(2.5e-4) = 6.324555; Welch–Satterthwaite
# df = (2.5e-4)² / ((4e-4/3)²/2 + (1.4e-3/12)²/3) = 135/29 = 4.655172; two-sided p = 2·P(T_df > t) = 0.0018872
# (the t density integrated numerically from t to 2000 gives 0.00188720).
P_AB = 0.0018872


def test_mean_ci_and_welch_against_hand_computed_values():
    mean, half = mean_ci(np.array(A))
    assert mean == pytest.approx(0.82) and half == pytest.approx(HALF_A, rel=1e-5)
    mean, half = mean_ci(np.array(B))
    assert mean == pytest.approx(0.72) and half == pytest.approx(HALF_B, rel=1e-5)
    assert welch_p(np.array(A), np.array(B)) == pytest.approx(P_AB, rel=1e-4)
    assert mean_ci(np.array([0.5])) == (0.5, None)
    assert welch_p(np.array([0.5]), np.array(B)) is None
    assert welch_p(np.array([0.5, 0.5]), np.array([0.6, 0.6])) is None  # no spread: no p-value, not NaN


def fake_checkpoint(folder: Path, name: str, arch: str, seed: int, seg_frac: float = 1.0) -> str:
    """A loadable checkpoint holding only a configuration (compare never builds the model)."""
    path = folder / f"{name}.pt"
    save_checkpoint(path, {"config": {"model": {"arch": arch, "backbone": "resnet18", "num_classes": 5},
                                      "train": {"seed": seed, "adv": "none", "seg_frac": seg_frac},
                                      "dataset": {"name": "toy", "image_size": 64}}, "model": {}})
    return str(path)


@pytest.fixture
def results(tmp_path) -> Path:
    """A robustness CSV: a resnet group (values A) and a bbox group (values B) on two benchmarks."""
    out = tmp_path / "robustness.csv"
    rows = []
    for arch, values, fracs in (("resnet", A, (1.0, 1.0, 1.0)), ("bbox", B, (1.0, 1.0, 0.5, 0.5))):
        for seed, (value, frac) in enumerate(zip(values, fracs)):
            ckpt = fake_checkpoint(tmp_path, f"{arch}{seed}", arch, seed, frac)
            for attack, acc in (("mean", value), ("fog/3", value - 0.1)):
                rows.append({"checkpoint": ckpt, "dataset": f"data/seed{seed}", "split": "test",
                             "suite": "corruptions", "attack": attack, "n": 100, "clean_acc": 0.9, "adv_acc": acc,
                             "norm": None, "seed": 0})
    append_results(out, rows, ROBUSTNESS_COLUMNS)
    return out


def test_compare_groups_by_a_checkpoint_property(results, tmp_path, capsys, monkeypatch):
    from partcli.cli import main

    summary_csv = tmp_path / "summary.csv"
    monkeypatch.setattr(sys, "argv", ["partcli", "compare", str(results), "--by", "arch", "--out", str(summary_csv)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    printed = capsys.readouterr()
    assert exit_info.value.code == 0, printed.err
    table = printed.out  # a result: on stdout
    assert "82.0 ± 5.0 (3)" in table and "72.0 ± 3.4 (4)" in table and "0.0019" in table
    summary = pd.read_csv(summary_csv)
    mean = summary[summary["attack"] == "mean"].set_index("group")
    assert list(mean.index) == ["resnet", "bbox"]  # file order; the first is the reference
    assert mean.loc["resnet", "ci95_high"] - 0.82 == pytest.approx(HALF_A, rel=1e-4)
    assert mean.loc["bbox", "ci95_low"] == pytest.approx(0.72 - HALF_B, rel=1e-4)
    assert mean.loc["bbox", "p_value"] == pytest.approx(P_AB, rel=1e-3) and pd.isna(mean.loc["resnet", "p_value"])
    assert list(mean["n_models"]) == [3, 4] and set(mean["dataset"]) == {"toy"}  # seeds' datasets pooled by name
    fog = summary[summary["attack"] == "fog/3"].set_index("group")
    assert fog.loc["resnet", "mean"] == pytest.approx(0.72)  # the same spread, shifted: the same p-value
    assert fog.loc["bbox", "p_value"] == pytest.approx(P_AB, rel=1e-3)


def test_compare_by_another_property_reference_and_filter(results):
    result = compare_results([results], "seg-frac", attacks=["mean"], reference="0.5")
    table = result.summary.set_index("group")
    assert list(result.groups) == ["1", "0.5"] and len(table) == 2
    assert table.loc["1", "n_models"] == 5 and table.loc["0.5", "mean"] == pytest.approx(0.715)
    assert table.loc["1", "p_value"] == pytest.approx(welch_p(np.array(A + B[:2]), np.array(B[2:])))


def test_compare_keeps_the_last_row_of_a_checkpoint_and_notes_single_seeds(results, tmp_path):
    with results.open(newline="") as fh:
        first = next(csv.DictReader(fh))
    append_results(results, [{**first, "adv_acc": 0.5, "norm": None}], ROBUSTNESS_COLUMNS)  # a re-run of resnet0
    ckpt = fake_checkpoint(tmp_path, "pixel0", "pixel", 0)
    append_results(results, [{**first, "checkpoint": ckpt, "adv_acc": 0.6, "norm": None}], ROBUSTNESS_COLUMNS)
    result = compare_results([results], "arch", attacks=["mean"])
    table = result.summary.set_index("group")
    assert table.loc["resnet", "mean"] == pytest.approx((0.5 + 0.82 + 0.84) / 3)
    assert table.loc["pixel", "n_models"] == 1 and pd.isna(table.loc["pixel", "ci95_low"])
    assert pd.isna(table.loc["pixel", "p_value"])
    assert any("1 earlier row" in n for n in result.notes)
    assert any("fewer than two" in n and "pixel" in n for n in result.notes)


def test_compare_reads_evaluate_rows_as_clean_accuracy(tmp_path):
    out = tmp_path / "evaluate.csv"
    rows = [{"checkpoint": fake_checkpoint(tmp_path, f"r{s}", "resnet", s), "dataset": "d", "split": "test",
             "suite": "clean", "attack": "none", "eps": 0.0, "n": 10, "clean_acc": v} for s, v in enumerate(A)]
    append_results(out, rows)
    summary = compare_results([out], "arch").summary
    assert summary["mean"].iloc[0] == pytest.approx(0.82) and summary["n_models"].iloc[0] == 3
