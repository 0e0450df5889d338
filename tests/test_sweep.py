"""``partcli sweep``: points and run folders, staged picks, the pick rules, resuming a killed sweep, ``--list`` and
``--point``, refusals, and the report's sweep figure.

Most tests replace ``run_training`` by ``FakeTraining``, which writes a run folder in the real on-disk format
(config.yaml, metrics.csv, checkpoints/last.pt) with accuracies that are a known function of the configuration,
so the expected picks are worked out by hand; one test trains for real.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Callable

import pytest
import yaml
from filelock import FileLock, Timeout

from helpers import run_cli
from partcli.config import write_config
from partcli.errors import PartcliError
from partcli.report.report import build_report
from partcli.sweep import build_definition, list_sweep, run_sweep
from partcli.sweep import run as sweep_run
from partcli.sweep.pick import Score, pick_point
from partcli.sweep.plan import plan_points, point_config
from partcli.train.config import TrainConfig
from partcli.train.run_files import METRIC_COLUMNS

# Every point: a tiny clean ResNet-18 run (TINY of conftest) of two epochs; tests add --set adv=pgd where they need it.
SETS = ["arch=resnet", "backbone=resnet18", "image_size=32", "batch_size=16", "device=cpu", "workers=0", "epochs=2"]
Accuracy = Callable[[TrainConfig], tuple[float, float | None]]


class FakeTraining:
    """Stands in for ``run_training``: writes ``cfg.epochs`` metrics rows whose best epoch is the first (epoch 1 has
    ``accuracy(cfg)``, every later epoch 0.05 less; clean runs no adversarial accuracy), or, for the ``crash_on``-th
    call, one epoch and an error."""

    def __init__(self, accuracy: Accuracy, crash_on: int | None = None):
        self.accuracy, self.crash_on = accuracy, crash_on
        self.calls: list[tuple[str, bool]] = []  # (run folder name, resume)
        self.summaries: list[list[dict[str, str]]] = []  # sweep.csv as each call found it

    def __call__(self, cfg: TrainConfig, resume: bool = False, overwrite: bool = False, given=None) -> Path:
        out = Path(cfg.out)
        self.calls.append((out.name, resume))
        self.summaries.append(read_csv(out.parent / "sweep.csv"))
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        write_config(out / "config.yaml", cfg, {"partcli_version": "test"})
        clean, adv = self.accuracy(cfg)
        adv = None if cfg.adv == "none" else adv
        crash = len(self.calls) == self.crash_on
        epochs = 1 if crash else cfg.epochs
        with (out / "metrics.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS)
            writer.writeheader()
            for epoch in range(1, epochs + 1):
                drop = 0.05 * (epoch - 1)
                writer.writerow({"epoch": epoch, "lr": cfg.lr, "train_loss": 1.0, "train_acc": 0.5,
                                 "val_clean_acc": round(clean - drop, 6),
                                 "val_adv_acc": "" if adv is None else round(adv - drop, 6), "seconds": 1.0})
        (out / "checkpoints" / "last.pt").write_bytes(b"weights")
        if crash:
            raise RuntimeError("killed")
        return out


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def definition(data: Path, *, sets=(), grids=(), stages=(), picks=(), target_adv=None, epochs=2):
    fixed = [s for s in SETS if s != "epochs=2"] + [f"epochs={epochs}", *sets]
    return build_definition(data, sets=fixed, grids=list(grids), stages=list(stages), picks=list(picks),
                            target_adv=target_adv)


def stored(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


@pytest.fixture
def fake(monkeypatch) -> Callable[..., FakeTraining]:
    def install(accuracy: Accuracy, crash_on: int | None = None) -> FakeTraining:
        runner = FakeTraining(accuracy, crash_on)
        monkeypatch.setattr("partcli.sweep.run.run_training", runner)
        return runner

    return install


# -- points, folders, configurations ----------------------------------------------------------------------------
def test_points_and_folder_names_of_a_2x2_grid(synthetic_data, tmp_path):
    d = definition(synthetic_data, grids=["lr=0.1,0.05", "wd=1e-4,5e-4"])
    points = plan_points(d)
    assert [p.values for p in points] == [{"lr": 0.1, "wd": 1e-4}, {"lr": 0.1, "wd": 5e-4},
                                          {"lr": 0.05, "wd": 1e-4}, {"lr": 0.05, "wd": 5e-4}]
    assert [p.name for p in points] == ["s1-p0-lr=0.1-wd=0.0001", "s1-p1-lr=0.1-wd=0.0005",
                                        "s1-p2-lr=0.05-wd=0.0001", "s1-p3-lr=0.05-wd=0.0005"]
    # a later stage goes on numbering; a fraction, a word and a path make safe names
    staged = plan_points(definition(synthetic_data, stages=["lr=0.1", "eps=8/255 amp=off,bf16", "init=a:b/c.pt"]))
    assert [p.name for p in staged[:3]] == ["s1-p0-lr=0.1", "s2-p1-eps=0.0313725-amp=off",
                                            "s2-p2-eps=0.0313725-amp=bf16"]
    assert re.fullmatch(r"s3-p3-init=[A-Za-z0-9._=+-]{1,40}", staged[3].name) and staged[3].name.endswith("a_b_c.pt")


def test_a_point_configuration_layers_defaults_config_sets_picks_values_and_out(synthetic_data, tmp_path):
    config = tmp_path / "base.yaml"
    config.write_text("lr: 0.3\ncseg: 0.7\nmomentum: 0.8\nout: elsewhere\n")
    d = build_definition(synthetic_data, config=config, sets=["cseg=0.2", "eps=4/255"], grids=["lr=0.01,0.02"])
    point = plan_points(d)[1]
    cfg = point_config(d, point, {"wd": 0.001, "momentum": 0.7}, tmp_path / "sweep")
    assert (cfg.lr, cfg.cseg, cfg.momentum, cfg.wd, cfg.eps) == (0.02, 0.2, 0.7, 0.001, 4 / 255)
    assert cfg.beta == TrainConfig().beta  # untouched: the dataclass default
    assert cfg.out == str((tmp_path / "sweep" / "s1-p1-lr=0.02").resolve())
    assert cfg.data == str(synthetic_data.resolve())


def test_values_are_read_as_the_options_own_rules(synthetic_data):
    d = definition(synthetic_data, sets=["amp=off", "val-steps=none", "seg_frac=1/2"],
                   grids=["eps=8/255,0.0157", "drop_background=true,false", "steps=3"])
    assert d.sets["amp"] == "off" and d.sets["val_steps"] is None and d.sets["seg_frac"] == 0.5
    assert d.stages == [{"eps": [8 / 255, 0.0157], "drop_background": [True, False], "steps": [3]}]


# -- pick rules (pure) ------------------------------------------------------------------------------------------
def test_pick_adv_takes_the_best_adversarial_accuracy_and_the_earlier_point_on_ties():
    scores = [Score(4, 0.80, 0.30), Score(5, 0.95, 0.35), Score(6, 0.99, 0.35)]
    assert pick_point(scores, "adv").point == 5


def test_pick_adv_of_clean_runs_takes_the_best_clean_accuracy():
    scores = [Score(0, 0.70, None), Score(1, 0.90, None), Score(2, 0.90, None)]
    assert pick_point(scores, "adv").point == 1


def test_pick_clean_at_adv_takes_the_best_clean_accuracy_among_comparable_robustness():
    scores = [Score(0, 0.97, 0.08),  # below 0.10 − 0.01
              Score(1, 0.93, 0.09),  # exactly at the floor: qualifies (0.1 − 0.01 is 0.09000000000000001)
              Score(2, 0.91, 0.20),  # the most robust, less accurate
              Score(3, 0.93, 0.12)]  # ties point 1 on clean accuracy: the earlier point wins
    pick = pick_point(scores, "clean-at-adv", target_adv=0.10, margin=0.01)
    assert pick.point == 1 and pick.note is None


def test_pick_clean_at_adv_falls_back_to_adv_and_says_so():
    scores = [Score(0, 0.97, 0.20), Score(1, 0.80, 0.30)]
    pick = pick_point(scores, "clean-at-adv", target_adv=0.45, margin=0.01)
    assert pick.point == 1
    assert "no point reaches val adv acc 44.0%" in pick.note and "the best is 30.0%" in pick.note


def test_pick_none_picks_nothing():
    assert pick_point([Score(0, 0.5, 0.2)], "none").point is None


# -- running ----------------------------------------------------------------------------------------------------
def by_lr_wd_cseg(cfg: TrainConfig) -> tuple[float, float | None]:
    """Stage 1: adversarial accuracy peaks at lr 0.05, wd 5e-4; stage 2: cseg trades clean for robust accuracy."""
    adv = 0.30 + (0.05 if cfg.lr == 0.05 else 0.0) + (0.02 if cfg.wd == 5e-4 else 0.0) + (cfg.cseg - 0.5) / 2
    return 0.90 - cfg.cseg / 4, round(adv, 6)


def test_a_staged_sweep_starts_each_stage_from_the_previous_pick(synthetic_data, tmp_path, fake):
    runner = fake(by_lr_wd_cseg)
    out = tmp_path / "sweep"
    d = definition(synthetic_data, sets=["adv=pgd"], stages=["lr=0.1,0.05 wd=1e-4,5e-4", "cseg=0.1,0.5,0.7"],
                   picks=["adv", "clean-at-adv"], target_adv=0.37)
    state = run_sweep(d, out)
    assert [name for name, _ in runner.calls] == [p.name for p in plan_points(d)]
    # stage 1: adv 0.30 + 0.05 + 0.02 + 0 at lr 0.05, wd 5e-4 (point 3); stage 2 runs start from it
    for name in ("s2-p4-cseg=0.1", "s2-p5-cseg=0.5", "s2-p6-cseg=0.7"):
        assert (stored(out / name)["lr"], stored(out / name)["wd"]) == (0.05, 5e-4)
    assert stored(out / "s2-p6-cseg=0.7")["cseg"] == 0.7
    # stage 2 (epoch 1 is best): cseg 0.1 → clean 0.875, adv 0.17; 0.5 → 0.775, 0.37; 0.7 → 0.725, 0.47.
    # clean-at-adv with target 0.37 − 0.01: cseg 0.5 and 0.7 qualify, 0.5 is the more accurate
    rows = read_csv(out / "sweep.csv")
    assert list(rows[0]) == ["stage", "point", "run", "status", "lr", "wd", "cseg", "best_epoch", "val_clean_acc",
                             "val_adv_acc", "picked"]
    assert [r["picked"] for r in rows] == ["0", "0", "0", "1", "0", "1", "0"]
    assert rows[5] == {"stage": "2", "point": "5", "run": "s2-p5-cseg=0.5", "status": "done", "lr": "", "wd": "",
                       "cseg": "0.5", "best_epoch": "1", "val_clean_acc": "0.775", "val_adv_acc": "0.37",
                       "picked": "1"}
    assert [s.picked.point.index for s in state.stages] == [3, 5]
    assert yaml.safe_load((out / "sweep.yaml").read_text())["stages"] == [
        {"lr": [0.1, 0.05], "wd": [1e-4, 5e-4]}, {"cseg": [0.1, 0.5, 0.7]}]


def test_sweep_csv_is_rewritten_after_every_point(synthetic_data, tmp_path, fake):
    runner = fake(by_lr_wd_cseg)
    run_sweep(definition(synthetic_data, grids=["lr=0.1,0.05,0.02"]), tmp_path / "sweep")
    seen = [[r["status"] for r in summary] for summary in runner.summaries]
    assert seen == [["todo", "todo", "todo"], ["done", "todo", "todo"], ["done", "done", "todo"]]


def test_sweep_csv_is_read_and_written_under_its_lock(synthetic_data, tmp_path, fake, monkeypatch):
    """Parallel --point jobs: each reads the runs' state and writes sweep.csv while holding sweep.csv.lock, so a job
    that read an older state cannot write after one that read a newer."""
    fake(by_lr_wd_cseg)
    out, held = tmp_path / "sweep", []
    real_state = sweep_run.sweep_state

    def state_while_checking_the_lock(*args, **kwargs):
        try:
            FileLock(out / "sweep.csv.lock", timeout=0).acquire()
        except Timeout:
            held.append(True)
        else:
            held.append(False)
        return real_state(*args, **kwargs)

    monkeypatch.setattr(sweep_run, "sweep_state", state_while_checking_the_lock)
    run_sweep(definition(synthetic_data, grids=["lr=0.1,0.05"]), out)
    assert held == [False, True, True, True]  # the check before any run reads only; each rewrite holds the lock
    assert [r["status"] for r in read_csv(out / "sweep.csv")] == ["done", "done"]


def test_a_killed_sweep_rerun_skips_finished_points_and_continues_the_partial_one(synthetic_data, tmp_path, fake):
    d = definition(synthetic_data, grids=["lr=0.1,0.05,0.02"])
    out = tmp_path / "sweep"
    killed = fake(by_lr_wd_cseg, crash_on=2)  # the first run finishes, the second dies after one of its two epochs
    with pytest.raises(RuntimeError, match="killed"):
        run_sweep(d, out)
    assert killed.calls == [("s1-p0-lr=0.1", False), ("s1-p1-lr=0.05", False)]
    assert [r["status"] for r in read_csv(out / "sweep.csv")] == ["done", "partial", "todo"]
    rerun = fake(by_lr_wd_cseg)
    run_sweep(d, out)
    assert rerun.calls == [("s1-p1-lr=0.05", True), ("s1-p2-lr=0.02", False)]
    assert [r["status"] for r in read_csv(out / "sweep.csv")] == ["done", "done", "done"]


def test_a_killed_real_sweep_rerun_skips_the_finished_run(synthetic_data, tmp_path, monkeypatch):
    from partcli.train.loop import run_training

    calls = []

    def interrupted(cfg, **kwargs):
        calls.append(Path(cfg.out).name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C as the second run starts
        return run_training(cfg, **kwargs)

    monkeypatch.setattr("partcli.sweep.run.run_training", interrupted)
    d = definition(synthetic_data, grids=["seed=0,1"], epochs=1)
    out = tmp_path / "sweep"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(d, out)
    first = out / "s1-p0-seed=0" / "checkpoints" / "last.pt"
    stamp = first.stat().st_mtime_ns
    state = run_sweep(d, out)
    assert calls == ["s1-p0-seed=0", "s1-p1-seed=1", "s1-p1-seed=1"]
    assert first.stat().st_mtime_ns == stamp
    assert [p.status for p in state.points] == ["done", "done"]
    assert all(p.best_epoch == 1 and 0 <= p.val_clean_acc <= 1 and p.val_adv_acc is None for p in state.points)


# -- --list and --point -----------------------------------------------------------------------------------------
def cli_args(data: Path, out: Path, *extra: str) -> list[str]:
    sets = [a for s in SETS for a in ("--set", s)]
    return ["sweep", "--data", data, "--out", out, *sets, *extra]


STAGES = ["--set", "adv=pgd", "--stage", "lr=0.1,0.05", "--stage", "wd=1e-4,5e-4"]


def test_list_shows_points_and_status_and_writes_nothing(synthetic_data, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    out = tmp_path / "sweep"
    result = run_cli(*cli_args(synthetic_data, out, *STAGES, "--list"))
    assert result.code == 0, result.output
    assert not out.exists()
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in result.out.splitlines() if line.startswith("│")]
    assert rows == [["0", "1", "s1-p0-lr=0.1", "0.1", "", "todo", "–", "–", ""],
                    ["1", "1", "s1-p1-lr=0.05", "0.05", "", "todo", "–", "–", ""],
                    ["2", "2", "s2-p2-wd=0.0001", "", "0.0001", "todo", "–", "–", ""],
                    ["3", "2", "s2-p3-wd=0.0005", "", "0.0005", "todo", "–", "–", ""]]


def test_point_runs_one_point_and_a_later_stage_waits_for_the_earlier(synthetic_data, tmp_path, fake):
    runner = fake(by_lr_wd_cseg)
    out = tmp_path / "sweep"
    early = run_cli(*cli_args(synthetic_data, out, *STAGES, "--point", "2"))
    assert early.code == 2 and not out.exists()
    assert early.err.strip() == ("error: --point 2: stage 2 starts from the pick of stage 1, whose point(s) 0, 1 "
                                 "are not finished; run them first (--point 0, ...)")
    assert run_cli(*cli_args(synthetic_data, out, *STAGES, "--point", "1")).code == 0
    assert runner.calls == [("s1-p1-lr=0.05", False)]
    assert [r["status"] for r in read_csv(out / "sweep.csv")] == ["todo", "done", "todo", "todo"]
    assert run_cli(*cli_args(synthetic_data, out, *STAGES, "--point", "0")).code == 0
    assert run_cli(*cli_args(synthetic_data, out, *STAGES, "--point", "3")).code == 0
    assert runner.calls[-1] == ("s2-p3-wd=0.0005", False)
    assert stored(out / "s2-p3-wd=0.0005")["lr"] == 0.05  # stage 1's pick (val adv acc 0.37 vs 0.32)
    state = list_sweep(definition(synthetic_data, sets=["adv=pgd"], stages=["lr=0.1,0.05", "wd=1e-4,5e-4"]), out)
    assert [p.status for p in state.points] == ["done", "done", "todo", "done"]


# -- refusals ---------------------------------------------------------------------------------------------------
def test_a_changed_configuration_is_refused_naming_the_folder_and_option(synthetic_data, tmp_path, fake):
    fake(by_lr_wd_cseg)
    config = tmp_path / "base.yaml"
    config.write_text("cseg: 0.5\n")
    out = tmp_path / "sweep"
    args = cli_args(synthetic_data, out, "--config", config, "--grid", "lr=0.1,0.05")
    assert run_cli(*args).code == 0
    before = (out / "s1-p0-lr=0.1" / "config.yaml").read_text()
    config.write_text("cseg: 0.7\n")  # the same sweep definition, other configurations
    rerun = fake(by_lr_wd_cseg)
    result = run_cli(*args)
    assert result.code == 2 and rerun.calls == []
    assert result.err.strip() == (f"error: {out / 's1-p0-lr=0.1'}: was trained with --cseg 0.5, but this "
                                  "sweep gives the point --cseg 0.7 (the sweep changed?); delete that run folder, or "
                                  "use another --out")
    assert (out / "s1-p0-lr=0.1" / "config.yaml").read_text() == before


def test_a_changed_definition_is_refused_unless_overwrite(synthetic_data, tmp_path, fake):
    fake(by_lr_wd_cseg)
    out = tmp_path / "sweep"
    assert run_cli(*cli_args(synthetic_data, out, "--grid", "lr=0.1,0.05")).code == 0
    changed = cli_args(synthetic_data, out, "--set", "cseg=0.3", "--grid", "lr=0.1,0.05")
    result = run_cli(*changed)
    assert result.code == 2
    assert "holds another sweep (its sweep.yaml has a different sets)" in result.err
    # --overwrite redefines the sweep, but the finished runs of other configurations are still refused
    result = run_cli(*changed, "--overwrite")
    assert result.code == 2 and "was trained with --cseg 0.5, but this sweep gives the point --cseg 0.3" in result.err
    # where the runs compute may change between invocations (e.g. a cluster job per point)
    elsewhere = [a.replace("workers=0", "workers=1") if isinstance(a, str) else a
                 for a in cli_args(synthetic_data, out, "--grid", "lr=0.1,0.05")]
    assert run_cli(*elsewhere).code == 0


def test_a_folder_that_holds_something_else_is_refused(synthetic_data, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run_cli(*cli_args(synthetic_data, out, "--grid", "lr=0.1"))
    assert result.code == 2 and "holds no sweep (sweep.yaml)" in result.err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


BAD = [
    (["--grid", "foo=1,2"], "--grid foo: not an option of `partcli train`"),
    (["--grid", "lr="], "--grid lr=: an empty value"),
    (["--grid", "lr=0.1,"], "--grid lr=0.1,: an empty value"),
    (["--grid", "lr"], "--grid 'lr': expected KEY=V1,V2"),
    (["--grid", "lr=0.1", "--grid", "lr=0.2"], "--grid lr: given twice"),
    (["--grid", "lr=0.1,0.1"], "--grid lr: the value 0.1 is given twice"),
    (["--grid", "lr=abc"], "--grid lr 'abc': expected a number"),
    (["--grid", "steps=1.5"], "--grid steps: expected an int"),
    (["--grid", "arch=vit"], "--grid arch 'vit': expected one of"),
    (["--grid", "lr=-1"], "sweep point 0 (lr=-1.0): --lr -1: must be positive"),
    (["--grid", "lr=0.1", "--stage", "wd=1e-4"], "--grid and --stage"),
    ([], "--grid or --stage is required"),
    (["--stage", "lr=0.1 0.05"], "--stage '0.05': expected KEY=V1,V2"),
    (["--grid", "lr=0.1", "--pick", "clean-at-adv"], "--pick clean-at-adv needs --target-adv"),
    (["--grid", "lr=0.1", "--pick", "clean-at-adv", "--target-adv", "42"], "--target-adv 42: expected a fraction"),
    (["--grid", "lr=0.1", "--target-adv", "0.4"], "--target-adv: only the clean-at-adv rule uses it"),
    (["--grid", "lr=0.1", "--pick", "clean-at-adv", "--target-adv", "0.4"], "--pick clean-at-adv: the runs of stage "
                                                                            "1 are clean"),
    (["--grid", "lr=0.1", "--pick", "best"], "--pick 'best': expected one of adv, clean-at-adv, none"),
    (["--stage", "lr=0.1", "--stage", "wd=1e-4", "--pick", "none", "--pick", "adv"],
     "--pick none: stage 1 is not the last"),
    (["--stage", "lr=0.1", "--stage", "wd=1e-4", "--pick", "none"], "--pick none: stage 1 is not the last"),
    (["--stage", "lr=0.1", "--stage", "wd=1e-4", "--stage", "cseg=0.1", "--pick", "adv", "--pick", "adv"],
     "--pick: 2 rules for 3 stages"),
    (["--grid", "lr=0.1,0.2", "--point", "2"], "--point 2: the sweep has points 0 to 1"),
    (["--grid", "lr=0.1", "--list", "--point", "0"], "--list and --point"),
    (["--grid", "out=a,b"], "--grid out: cannot be set or swept"),
    (["--set", "replanned=[]", "--grid", "lr=0.1"], "--set replanned: cannot be set or swept"),
    (["--grid", "data=a,b"], "--grid data: cannot be set or swept; give the dataset with --data"),
    (["--set", "cseg=0.1", "--set", "cseg=0.2", "--grid", "lr=0.1"], "--set cseg: given twice"),
    (["--set", "init=missing.pt", "--grid", "lr=0.1"], "missing.pt: file not found"),
]


@pytest.mark.parametrize("extra, message", BAD, ids=[" ".join(b[0]) or "nothing" for b in BAD])
def test_bad_input_is_refused_in_one_line_and_writes_nothing(synthetic_data, tmp_path, extra, message):
    out = tmp_path / "sweep"
    result = run_cli(*cli_args(synthetic_data, out, *extra))
    assert result.code == 2, result.output
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.err
    assert not out.exists()


@pytest.mark.parametrize("drop, message", [("--data", "--data is required"), ("--out", "--out is required")])
def test_missing_data_or_out_is_refused(synthetic_data, tmp_path, drop, message):
    args = cli_args(synthetic_data, tmp_path / "sweep", "--grid", "lr=0.1")
    at = args.index(drop)
    result = run_cli(*args[:at], *args[at + 2:])
    assert result.code == 2 and result.err.strip().startswith(f"error: {message}"), result.err


def test_data_that_is_not_a_prepared_dataset_is_refused(tmp_path):
    result = run_cli(*cli_args(tmp_path / "nothing", tmp_path / "sweep", "--grid", "lr=0.1"))
    assert result.code == 2 and result.err.startswith(f"error: --data {tmp_path / 'nothing'}")
    assert not (tmp_path / "sweep").exists()


def test_the_python_api_refuses_too(synthetic_data, tmp_path):
    with pytest.raises(PartcliError, match="--grid or --stage is required"):
        build_definition(synthetic_data)
    d = definition(synthetic_data, grids=["lr=0.1"])
    with pytest.raises(PartcliError, match="--point 1"):
        run_sweep(d, tmp_path / "sweep", point=1)
    assert list_sweep(d, tmp_path / "sweep").points[0].status == "todo"


# -- report -----------------------------------------------------------------------------------------------------
def test_report_draws_each_sweep_and_tables_its_points(synthetic_data, tmp_path, fake):
    fake(by_lr_wd_cseg)
    out = tmp_path / "sweep"
    run_sweep(definition(synthetic_data, sets=["adv=pgd"], stages=["lr=0.1,0.05 wd=1e-4,5e-4", "cseg=0.1,0.7"]), out)
    result = build_report([out], tmp_path / "report")
    page = (tmp_path / "report" / "index.md").read_text()
    assert (tmp_path / "report" / "sweep-sweep.png").stat().st_size > 10_000
    assert "## Hyper-parameter sweeps" in page and "### sweep" in page and "![sweep sweep](sweep-sweep.png)" in page
    assert "| 2 | 5 |  |  | 0.7 | done | 1 | 72.5 | 47.0 | ✓ |" in page
    assert not any("sweep.csv" in s for s in result.skipped)
    # sweep.csv alone is a report's input too
    alone = build_report([out / "sweep.csv"], tmp_path / "report-csv")
    assert "sweep-sweep.png" in (alone.out / "index.md").read_text()


def test_report_of_a_clean_sweep_has_its_table_and_no_figure(synthetic_data, tmp_path, fake):
    fake(by_lr_wd_cseg)  # clean runs: no adversarial accuracy to place a point by
    run_sweep(definition(synthetic_data, grids=["cseg=0.1,0.5"]), tmp_path / "sweep")
    build_report([tmp_path / "sweep" / "sweep.csv"], tmp_path / "report")
    page = (tmp_path / "report" / "index.md").read_text()
    assert "| 1 | 0 | 0.1 | done | 1 | 87.5 | – | ✓ |" in page and "no figure" in page
    assert not list((tmp_path / "report").glob("sweep-*.png"))
