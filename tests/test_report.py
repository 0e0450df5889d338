"""``partcli report``: figures written for a tiny real run, Table 1 equal to the CSVs, mean ± CI over seeds."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from partcli.attacks.suite import run_attack_suite
from partcli.config import write_config
from partcli.evaluate.results_csv import append_results
from partcli.report.report import build_report
from partcli.robustness.suite import ROBUSTNESS_COLUMNS, run_robustness
from partcli.train.config import TrainConfig
from partcli.train.run_files import METRIC_COLUMNS

EPS = 8 / 255


def make_run(root: Path, name: str, *, arch: str = "bbox", adv: str = "none", seed: int = 0, beta: float = 0.5,
             epochs: int = 3) -> Path:
    """A run folder as training writes it (config.yaml, metrics.csv); its checkpoint file is not needed."""
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    cfg = TrainConfig(data=str(root / "data"), out=str(run), arch=arch, adv=adv, seed=seed, beta=beta, epochs=epochs)
    write_config(run / "config.yaml", cfg, {"partcli_version": "0.1.0"})
    with (run / "metrics.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        for epoch in range(1, epochs + 1):
            writer.writerow({"epoch": epoch, "lr": 0.1 / epoch, "train_loss": 1.5 / epoch, "train_acc": 0.3 * epoch,
                             "val_clean_acc": 0.25 * epoch, "val_adv_acc": 0.1 * epoch if adv != "none" else "",
                             "val_pixel_acc": "" if arch == "resnet" else 0.5, "seconds": 1.0,
                             "val_fg_pixel_acc": "" if arch == "resnet" else 0.2,
                             "val_miou": "" if arch == "resnet" else 0.1})
    return run


def rows_for(run: Path, clean: float, aa: float | None = None, pgd: float | None = None, eps: float = EPS,
             suite: str = "all", checkpoint: str | None = None) -> list[dict]:
    ckpt = checkpoint or str(run / "checkpoints" / "best.pt")
    base = {"checkpoint": ckpt, "dataset": "data/synth", "split": "test", "suite": suite, "eps": eps, "n": 100,
            "clean_acc": clean, "seconds": 1.0}
    out = []
    if aa is not None:
        out.append({**base, "attack": "autoattack[apgd-ce,apgd-t,fab-t,square;targets=4]", "adv_acc": aa})
    if pgd is not None:
        out.append({**base, "attack": "pgd", "adv_acc": pgd})
    return out


def _png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    Image.open(path).load()


def test_report_of_a_tiny_real_run(bbox_checkpoint, synthetic_data, tmp_path):
    """A tiny trained run and a tiny real `attack`: curves, Table 1 and the hygiene checklist are in the report."""
    results = tmp_path / "results" / "attacks.csv"
    attack = run_attack_suite(bbox_checkpoint, synthetic_data, suite="pgd", n=4, steps=1, restarts=2, out=results)
    assert attack.checklist_path is not None and attack.checklist_path.name == "attacks.pgd.1.hygiene.json"
    run = bbox_checkpoint.parent.parent
    out = tmp_path / "report"
    result = build_report([results.parent, run], out)
    index = (out / "index.md").read_text()
    figures = {name for s in result.sections for name in s.figures}
    assert figures == {"curves-bbox.png"}
    for name in figures:
        _png(out / name)
        assert f"]({name})" in index
    row = attack.rows[0]
    cell = result.table1_values["bounding-box part model (resnet18), clean", "synthetic", "PGD"]
    assert cell.mean == pytest.approx(row["adv_acc"], abs=1e-6) and cell.n == 1
    assert f"| {100 * row['clean_acc']:.1f} | – | {100 * row['adv_acc']:.1f} |" in index
    assert "eps-sweep; App. B: 100 steps of 0.001, 5 restarts), here 1 step of 0.001, 2 restarts." in index
    for check in json.loads(attack.checklist_path.read_text())["checks"]:
        assert f"{check['name']}: " in index
    assert "No adversarially trained" in index and "No model was attacked at several ε" in index
    assert "attacks.pgd.1.samples.csv" not in index  # per-sample outcomes are no results and no skipped input


def test_table_numbers_equal_the_csvs(tmp_path):
    runs = tmp_path / "runs"
    rn, bbox = make_run(runs, "rn-pgd", arch="resnet", adv="pgd"), make_run(runs, "bbox-pgd", adv="pgd")
    csv_path = tmp_path / "results" / "attacks.csv"
    append_results(csv_path, rows_for(rn, 0.812, aa=0.263, pgd=0.291) + rows_for(bbox, 0.884, aa=0.157, pgd=0.171)
                   + rows_for(bbox, 0.884, pgd=0.165, suite="pgd"))  # a second, stronger PGD row of bbox-pgd
    append_results(tmp_path / "results" / "evaluate.csv",
                   [{"checkpoint": str(rn / "checkpoints" / "best.pt"), "dataset": "data/synth", "split": "test",
                     "suite": "clean", "attack": "none", "eps": 0.0, "n": 1000, "clean_acc": 0.8205}])
    result = build_report([tmp_path], tmp_path / "report")
    values = {k: round(100 * v.mean, 4) for k, v in result.table1_values.items() if v.n}
    rn_label, bbox_label = "resnet18 baseline, PGD", "bounding-box part model (resnet18), PGD"
    assert values == {(rn_label, "synth", "clean"): 82.05, (rn_label, "synth", "AutoAttack"): 26.3,
                      (rn_label, "synth", "PGD"): 29.1, (bbox_label, "synth", "clean"): 88.4,
                      (bbox_label, "synth", "AutoAttack"): 15.7, (bbox_label, "synth", "PGD"): 16.5}
    index = (tmp_path / "report" / "index.md").read_text()
    assert f"| {rn_label} | rn-pgd | 1 | 82.0 | 26.3 | 29.1 |" in index  # 82.05 rounds to even
    assert f"| {bbox_label} | bbox-pgd | 1 | 88.4 | 15.7 | 16.5 |" in index
    assert "here steps and restarts not recorded" in index  # rows_for writes no PGD settings (an older CSV)
    _png(tmp_path / "report" / "tradeoff.png")


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_a_report_of_two_seeds_shows_the_ci(relative, tmp_path):
    """Two seeds of one configuration; "relative": each seed's attacks ran inside its own folder, so both CSVs name
    the checkpoint runs/bbox-pgd/checkpoints/best.pt, found below each CSV's folder (and its .pt file deleted)."""
    seeds = [make_run(tmp_path / f"seed{s}" / "runs", "bbox-pgd", adv="pgd", seed=s) for s in (0, 1)]
    for run, (clean, aa) in zip(seeds, [(0.80, 0.30), (0.90, 0.40)]):
        name = "runs/bbox-pgd/checkpoints/best.pt" if relative else None
        append_results(run.parent.parent / "results" / "attacks.csv",
                       rows_for(run, clean, aa=aa, pgd=aa + 0.05, checkpoint=name))
    result = build_report([tmp_path], tmp_path / "report")
    half = stats.t.ppf(0.975, 1) * stats.tstd([30.0, 40.0]) / 2 ** 0.5
    cell = result.table1_values["bounding-box part model (resnet18), PGD", "synth", "AutoAttack"]
    assert (cell.n, 100 * cell.mean, 100 * cell.half) == (2, pytest.approx(35.0), pytest.approx(half))
    index = (tmp_path / "report" / "index.md").read_text()
    assert f"| 2 | 85.0 ± {5 * stats.t.ppf(0.975, 1):.1f} | 35.0 ± {half:.1f} | 40.0 ± {half:.1f} |" in index
    assert "35.0 ± 63.5" in index
    assert index.count("](curves-") == 1 and "mean over the seeds, their 95 % CI as a band" in index


def test_training_curves_of_seeds_show_the_mean_and_a_ci_band(tmp_path):
    seeds = [make_run(tmp_path / f"seed{s}", "bbox-pgd", adv="pgd", seed=s, epochs=3) for s in (0, 1)]
    metrics = pd.read_csv(seeds[1] / "metrics.csv")
    metrics["val_clean_acc"] += 0.1  # seed 1 is 10 points better on validation
    metrics.to_csv(seeds[1] / "metrics.csv", index=False)
    result = build_report([tmp_path], tmp_path / "report")
    (section,) = [s for s in result.sections if s.title == "Training curves"]
    (figure,) = section.figures.values()
    accuracy = next(ax for ax in figure.axes if ax.get_title() == "accuracy (%)")
    val = next(line for line in accuracy.get_lines() if line.get_label() == "val clean")
    assert list(val.get_ydata()) == pytest.approx([25.0 * e + 5.0 for e in (1, 2, 3)])  # the mean of the seeds
    half = stats.t.ppf(0.975, 1) * stats.tstd([0.0, 10.0]) / 2 ** 0.5
    band = accuracy.collections[1].get_paths()[0].vertices[:, 1]  # train, then val clean
    assert (band.min(), band.max()) == (pytest.approx(30.0 - half), pytest.approx(80.0 + half))


def test_trades_points_and_the_eps_sweep(tmp_path):
    runs = tmp_path / "runs"
    csv_path = tmp_path / "attacks.csv"
    rows = rows_for(make_run(runs, "rn-pgd", arch="resnet", adv="pgd"), 0.8, aa=0.3)
    for beta, clean, aa in ((0.1, 0.9, 0.1), (1.0, 0.7, 0.35)):
        rows += rows_for(make_run(runs, f"bbox-trades-{beta}", adv="trades", beta=beta), clean, aa=aa)
    clean_run = make_run(runs, "bbox-clean")
    for k, acc in zip((8, 16, 24, 32), (0.4, 0.2, 0.05, 0.0)):
        rows += rows_for(clean_run, 0.95, aa=acc, eps=k / 255, suite="eps-sweep")
    append_results(csv_path, rows)
    result = build_report([csv_path, runs], tmp_path / "report")
    names = {name for s in result.sections for name in s.figures}
    assert {"tradeoff.png", "eps-sweep.png"} <= names
    for name in ("tradeoff.png", "eps-sweep.png"):
        _png(tmp_path / "report" / name)
    tradeoff = next(s for s in result.sections if s.title.startswith("Accuracy"))
    labels = [t.get_text() for t in tradeoff.figures["tradeoff.png"].axes[0].texts]
    assert labels == ["β=0.1", "β=1"]
    index = (tmp_path / "report" / "index.md").read_text()
    assert "TRADES β=0.1" in index and "| 32/255 |" in index


def test_rerunning_replaces_the_previous_report(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "report"
    make_run(runs, "a").rename(tmp_path / "a")
    build_report([tmp_path / "a"], out)
    assert sorted(p.name for p in out.iterdir()) == ["curves-a.png", "index.html", "index.md"]
    make_run(runs, "b")
    build_report([runs], out, fmt="svg")  # the same --out again: the previous report's files go, no --overwrite
    assert sorted(p.name for p in out.iterdir()) == ["curves-b.svg", "index.html", "index.md"]


def test_pdf_figures_an_html_page_and_latex_tables(tmp_path):
    """--format pdf: the figures as PDFs linked from index.md; index.html holds the tables and the figures inline;
    table1.tex and robustness.tex are booktabs tables of the same rows, names escaped for LaTeX."""
    runs = tmp_path / "runs"
    rn, trades = make_run(runs, "rn-pgd", arch="resnet", adv="pgd"), make_run(runs, "bbox-trades", adv="trades")
    append_results(tmp_path / "attacks.csv", rows_for(rn, 0.8, aa=0.3, pgd=0.32) + rows_for(trades, 0.7, aa=0.35))
    append_results(tmp_path / "robustness.csv", shift_rows(rn, 0.64, {"fog": [0.6, 0.4]}, {
        "only-fg": 0.2, "only-bg": 0.34, "mixed-same": 0.5, "mixed-rand": 0.52}, (0.24, 0.343)), ROBUSTNESS_COLUMNS)
    out = tmp_path / "report"
    result = build_report([tmp_path], out, fmt="pdf")
    names = {name.removesuffix(".png") for s in result.sections for name in s.figures}
    assert names == {"tradeoff", "corruptions-synth", "curves-runs-rn-pgd", "curves-runs-bbox-trades"}
    index = (out / "index.md").read_text()
    for name in names:
        assert (out / f"{name}.pdf").read_bytes().startswith(b"%PDF") and f"]({name}.pdf)" in index
        assert not (out / f"{name}.png").exists()
    page = (out / "index.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(names) and ".pdf" not in page.split("<body>")[1]
    assert "<table>" in page and "<td>resnet18 baseline, PGD</td>" in page and "<td>80.0</td>" in page
    table1 = (out / "table1.tex").read_text()
    assert [r"\toprule", r"\midrule", r"\bottomrule"] == [line for line in table1.splitlines() if "rule" in line]
    assert r"resnet18 baseline, PGD & rn-pgd & 1 & 80.0 & 30.0 & 32.0 \\" in table1
    assert r"bounding-box part model (resnet18), TRADES $\beta$=0.5 & bbox-trades & 1 & 70.0 & 35.0 & -- \\" in table1
    robustness = (out / "robustness.tex").read_text()
    assert r"\toprule" in robustness and r"resnet18 baseline, PGD & rn-pgd & 1 & 64.0 & 50.0 & 20.0" in robustness
    assert "](table1.tex)" in index and "](robustness.tex)" in index


def test_latex_escapes_special_characters():
    from partcli.report.latex import escape

    assert escape(r"a_b & 50% #1 {x} $y ~z^ \ ± –") == (r"a\_b \& 50\% \#1 \{x\} \$y \textasciitilde{}z"
                                                        r"\textasciicircum{} \textbackslash{} $\pm$ --")


def test_models_named_alike_are_told_apart_and_best_and_last_are_not_seeds(tmp_path):
    runs = tmp_path / "runs"
    slow, fast = make_run(runs, "slow", adv="pgd"), make_run(runs, "fast", adv="pgd")
    (fast / "config.yaml").write_text((fast / "config.yaml").read_text().replace("lr: 0.1", "lr: 0.05"))
    rows = rows_for(slow, 0.8, pgd=0.3) + rows_for(fast, 0.7, pgd=0.2)
    rows += rows_for(fast, 0.6, pgd=0.1, checkpoint=str(fast / "checkpoints" / "last.pt"))
    append_results(tmp_path / "attacks.csv", rows)
    values = build_report([tmp_path], tmp_path / "report").table1_values
    pgd = {label: (round(100 * v.mean, 1), v.n) for (label, _, metric), v in values.items() if metric == "PGD"}
    name = "bounding-box part model (resnet18), PGD"
    assert pgd == {f"{name} (checkpoint=best.pt, lr=0.1)": (30.0, 1),
                   f"{name} (checkpoint=best.pt, lr=0.05)": (20.0, 1),
                   f"{name} (checkpoint=last.pt, lr=0.05)": (10.0, 1)}


def shift_rows(run: Path, clean: float, corrupted: dict[str, list[float]], foreground: dict[str, float],
               cue: tuple[float, float | None], seed: int = 0) -> list[dict]:
    """A checkpoint's rows as `partcli robustness --suite all` writes them (severities 1, 2 of a few types)."""
    base = {"checkpoint": str(run / "checkpoints" / "best.pt"), "dataset": "data/synth", "split": "test", "n": 50,
            "clean_acc": clean, "seconds": 0.5, "seed": seed}
    rows = [{**base, "suite": "corruptions", "attack": f"{name}/{s}", "severity": s, "adv_acc": acc}
            for name, accs in corrupted.items() for s, acc in enumerate(accs, 1)]
    mean = sum(r["adv_acc"] for r in rows) / len(rows)
    rows.append({**base, "suite": "corruptions", "attack": f"mean/{'+'.join(corrupted)}/1+2", "adv_acc": mean})
    rows += [{**base, "suite": "foreground", "attack": name, "adv_acc": acc} for name, acc in foreground.items()]
    rows.append({**base, "suite": "foreground", "attack": "bg-gap",
                 "bg_gap": foreground["mixed-same"] - foreground["mixed-rand"]})
    rows.append({**base, "suite": "shape-texture", "attack": "cue-conflict", "adv_acc": cue[0], "shape_bias": cue[1]})
    return rows


def test_robustness_tables_equal_the_csv(tmp_path):
    """Robustness rows make their own section: one row per model (two seeds pooled as mean ± CI), a severity figure
    with a line per model, and no "no section for it" in the skipped list."""
    runs = tmp_path / "runs"
    rn, seeds = make_run(runs, "rn", arch="resnet"), [make_run(runs, f"bbox-s{s}", seed=s) for s in (0, 1)]
    fg = {"only-fg": 0.2, "only-bg": 0.34, "mixed-same": 0.5, "mixed-rand": 0.52}
    rows = shift_rows(rn, 0.64, {"gaussian_noise": [0.5, 0.3], "fog": [0.6, 0.4]}, fg, (0.24, 0.343))
    rows += shift_rows(seeds[0], 0.48, {"gaussian_noise": [0.4, 0.2], "fog": [0.44, 0.3]},
                       {"only-fg": 0.2, "only-bg": 0.16, "mixed-same": 0.4, "mixed-rand": 0.44}, (0.36, 0.643))
    rows += shift_rows(seeds[1], 0.58, {"gaussian_noise": [0.5, 0.3], "fog": [0.54, 0.4]},
                       {"only-fg": 0.3, "only-bg": 0.2, "mixed-same": 0.46, "mixed-rand": 0.4}, (0.4, None))
    append_results(tmp_path / "results" / "robustness.csv", rows, ROBUSTNESS_COLUMNS)
    append_results(tmp_path / "results" / "attacks.csv", rows_for(rn, 0.66, pgd=0.01))
    result = build_report([tmp_path], tmp_path / "report")
    assert not [s for s in result.skipped if "no section" in s]
    index = (tmp_path / "report" / "index.md").read_text()
    assert "no section for" not in index
    rn_label, bbox_label = "resnet18 baseline, clean", "bounding-box part model (resnet18), clean"
    assert {label for label, _, _ in result.table1_values} == {rn_label}  # robustness rows are not Table 1's
    mean = "corruptions (mean/gaussian_noise+fog/1+2)"
    values = {(label, column): (round(100 * v.mean, 4), v.n) for (label, dataset, column), v in
              result.robustness_values.items() if label == rn_label and dataset == "synth"}
    assert values == {(rn_label, "clean"): (64.0, 1), (rn_label, mean): (45.0, 1), (rn_label, "Only-FG"): (20.0, 1),
                      (rn_label, "Only-BG"): (34.0, 1), (rn_label, "Mixed-Same"): (50.0, 1),
                      (rn_label, "Mixed-Rand"): (52.0, 1), (rn_label, "BG-gap"): (-2.0, 1),
                      (rn_label, "cue-conflict (shape acc)"): (24.0, 1), (rn_label, "shape bias"): (34.3, 1)}
    assert f"| {rn_label} | rn | 1 | 64.0 | 45.0 | 20.0 | 34.0 | 50.0 | 52.0 | -2.0 | 24.0 | 34.3 |" in index
    half = lambda a, b: stats.t.ppf(0.975, 1) * stats.tstd([a, b]) / 2 ** 0.5  # noqa: E731
    clean = result.robustness_values[bbox_label, "synth", "clean"]
    assert (clean.n, 100 * clean.mean, 100 * clean.half) == (2, pytest.approx(53.0), pytest.approx(half(48, 58)))
    gap = result.robustness_values[bbox_label, "synth", "BG-gap"]
    assert (100 * gap.mean, 100 * gap.half) == (pytest.approx(1.0), pytest.approx(half(-4, 6)))
    bias = result.robustness_values[bbox_label, "synth", "shape bias"]  # the second seed's is empty: one value
    assert (bias.n, bias.mean, bias.half) == (1, pytest.approx(0.643), None)
    assert f"| {bbox_label} | bbox-s0, bbox-s1 | 2 | 53.0 ± {half(48, 58):.1f} | 38.5 ± {half(33.5, 43.5):.1f} |" \
        in index
    _png(tmp_path / "report" / "corruptions-synth.png")
    assert "](corruptions-synth.png)" in index
    figure = next(s for s in result.sections if s.title.startswith("Robustness")).figures["corruptions-synth.png"]
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["gaussian noise", "fog"]  # ImageNet-C's order
    curves = [sorted((tuple(line.get_xdata()), tuple(round(y, 6) for y in line.get_ydata()))
                     for line in ax.get_lines()) for ax in panels]
    assert curves == [[((0, 1, 2), (53.0, 45.0, 25.0)), ((0, 1, 2), (64.0, 50.0, 30.0))],  # bbox: mean of its seeds
                      [((0, 1, 2), (53.0, 49.0, 35.0)), ((0, 1, 2), (64.0, 60.0, 40.0))]]  # severity 0: clean
    assert [len(ax.collections) for ax in panels] == [1, 1]  # a CI band for bbox's two seeds, none for resnet's one


def test_report_of_a_real_robustness_run(bbox_checkpoint, synthetic_data, tmp_path):
    """`partcli robustness --suite foreground` on the tiny checkpoint: its CSV's figures are the section's."""
    csv_path = tmp_path / "results" / "robustness.csv"
    rows = {r["attack"]: r for r in run_robustness(bbox_checkpoint, synthetic_data, suite="foreground",
                                                   out=csv_path).rows}
    result = build_report([csv_path], tmp_path / "report")
    assert not [s for s in result.skipped if "no section" in s]
    label = "bounding-box part model (resnet18), clean"
    values = {column: v for (name, _, column), v in result.robustness_values.items() if name == label}
    expected = {"clean": rows["only-fg"]["clean_acc"], "Only-FG": rows["only-fg"]["adv_acc"],
                "Only-BG": rows["only-bg"]["adv_acc"], "Mixed-Same": rows["mixed-same"]["adv_acc"],
                "Mixed-Rand": rows["mixed-rand"]["adv_acc"], "BG-gap": rows["bg-gap"]["bg_gap"]}
    assert {c: v.mean for c, v in values.items() if v.n} == pytest.approx(expected, abs=1e-6)
    assert {c for c, v in values.items() if not v.n} == {"corruptions (mean)", "cue-conflict (shape acc)",
                                                         "shape bias"}  # not run
    section = next(s for s in result.sections if s.title.startswith("Robustness"))
    assert not section.figures  # no corruption rows, no severity figure
    cells = " | ".join(f"{100 * v:.1f}" for v in expected.values()).replace(" | ", " | – | ", 1)  # after clean
    assert f"| {label} | bbox | 1 | {cells} | – | – |" in (tmp_path / "report" / "index.md").read_text()
