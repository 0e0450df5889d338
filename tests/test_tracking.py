"""--logger: what each tracker logged, read back with its own library's reader (TensorBoard's EventAccumulator,
MLflow's client on the file store, wandb's reader of its offline run files), compared with the run's files.

Each logger gets one tiny run: an epoch, then ``--resume --epochs 2``, which must continue the same tracker run.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import run_cli
from partcli.data.writer import DatasetWriter
from partcli.data.synthetic import CLASSES, parts, render_sample

STEPS = 2  # steps per epoch: 10 training samples, --batch-size 4, the last partial batch dropped
EPOCHS = 2


@pytest.fixture(scope="module")
def tiny_data(module_tmp) -> Path:
    """10 training, 5 validation and 5 test samples (one per class each) of 32 px."""
    out = module_tmp / "tiny"
    with DatasetWriter(out, list(CLASSES), parts(), name="tiny") as writer:
        for i in range(20):
            image, mask = render_sample(np.random.default_rng([0, i]), i % len(CLASSES), 32)
            split = "train" if i < 10 else "val" if i < 15 else "test"
            writer.add(split, f"{i:02d}", i % len(CLASSES), image, mask=mask)
        writer.finish({"command": "test"})
    return out


def pretrain(*args: object):
    return run_cli("--quiet", "pretrain", "--batch-size", 4, "--image-size", 16, "--device", "cpu", "--workers", 0,
                   "--lr", 0.05, "--log-interval", 1, *args)


def tracked_run(data: Path, logger: str) -> Path:
    """A 1-epoch run with ``--logger logger``, resumed for a second epoch."""
    out = data.parent / logger
    first = pretrain("--data", data, "--out", out, "--epochs", 1, "--logger", logger)
    assert first.code == 0, first.output
    resumed = pretrain("--out", out, "--resume", "--epochs", EPOCHS)
    assert resumed.code == 0, resumed.output
    return out


def metrics_rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    return rows


def assert_epochs_logged(scalars: dict[str, dict[int, float]], run: Path) -> None:
    """``scalars`` (name -> step -> value) holds every metrics.csv cell as ``epoch/<column>`` at the epoch's last
    step; empty cells (no adversarial accuracy in a clean run) are not logged."""
    for row in metrics_rows(run):
        step = int(row["epoch"]) * STEPS
        for column, cell in row.items():
            if cell == "":
                assert f"epoch/{column}" not in scalars
            else:  # metrics.csv holds 6 significant digits; TensorBoard float32
                assert scalars[f"epoch/{column}"][step] == pytest.approx(float(cell), rel=1e-5, abs=1e-7), column


def assert_steps_logged(scalars: dict[str, dict[int, float]], run: Path) -> None:
    """Every step (--log-interval 1) has the running loss, accuracy, lr and images/s; the running figures at an
    epoch's last step are the epoch's (one process), and its first step used the epoch's starting lr."""
    for name in ("step/loss", "step/acc", "step/lr", "step/images_per_s"):
        assert sorted(scalars[name]) == list(range(1, EPOCHS * STEPS + 1)), name
    for row in metrics_rows(run):
        last = int(row["epoch"]) * STEPS
        assert scalars["step/loss"][last] == pytest.approx(float(row["train_loss"]), rel=1e-5)
        assert scalars["step/acc"][last] == pytest.approx(float(row["train_acc"]), rel=1e-5)
        assert scalars["step/lr"][last - STEPS + 1] == pytest.approx(float(row["lr"]), rel=1e-5)
    assert all(v > 0 for v in scalars["step/images_per_s"].values())


# ------------------------------------------------------------------------------------------------ TensorBoard
@pytest.fixture(scope="module")
def tensorboard_run(tiny_data) -> Path:
    pytest.importorskip("tensorboard")
    return tracked_run(tiny_data, "tensorboard")


def read_tensorboard(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def test_tensorboard_scalars(tensorboard_run):
    events = read_tensorboard(tensorboard_run / "tensorboard")
    scalars = {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}
    assert_epochs_logged(scalars, tensorboard_run)
    assert_steps_logged(scalars, tensorboard_run)


def test_tensorboard_config_and_masks(tensorboard_run):
    events = read_tensorboard(tensorboard_run / "tensorboard")
    texts = [e.tensor_proto.string_val[0].decode() for e in events.Tensors("config/text_summary")]
    config = (tensorboard_run / "config.yaml").read_text()
    assert texts[-1] == f"```yaml\n{config}```"  # the resumed part's configuration (--epochs 2)
    images = events.Images("masks")
    assert [i.step for i in images] == [STEPS, 2 * STEPS]
    assert all(i.width > 100 and i.height > 100 for i in images)


# ------------------------------------------------------------------------------------------------ MLflow
@pytest.fixture(scope="module")
def mlflow_run(tiny_data) -> Path:
    pytest.importorskip("mlflow")
    return tracked_run(tiny_data, "mlflow")


def mlflow_client(run: Path):
    import os

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 asks for it to open a file store
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())


def test_mlflow_one_run_continued_by_the_resume(mlflow_run):
    client = mlflow_client(mlflow_run)
    experiment = client.get_experiment_by_name("partcli")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and runs[0].info.run_name == "mlflow"
    assert yaml.safe_load((mlflow_run / "trackers.yaml").read_text()) == {"mlflow": runs[0].info.run_id}
    run_id = runs[0].info.run_id
    scalars = {key: {m.step: m.value for m in client.get_metric_history(run_id, key)}
               for key in runs[0].data.metrics}
    assert_epochs_logged(scalars, mlflow_run)
    assert_steps_logged(scalars, mlflow_run)


def test_mlflow_config_and_masks(mlflow_run, tmp_path):
    client = mlflow_client(mlflow_run)
    run = client.search_runs([client.get_experiment_by_name("partcli").experiment_id])[0]
    config = yaml.safe_load((mlflow_run / "config.yaml").read_text())
    assert run.data.params["lr"] == str(config["lr"]) and run.data.params["arch"] == "bbox"
    assert run.data.params["epochs"] == "1"  # parameters cannot change: the first part's value stays ...
    copy = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path)))
    assert copy.read_text() == (mlflow_run / "config.yaml").read_text()  # ... the artifact is the latest
    images = [f.path for f in client.list_artifacts(run.info.run_id, "images") if f.path.endswith(".png")]
    assert sorted(Path(p).name.split("+")[2] for p in images) == [str(STEPS), str(2 * STEPS)]  # masks+step+N+...


# ------------------------------------------------------------------------------------------------ wandb
@pytest.fixture(scope="module")
def wandb_run(tiny_data) -> Path:
    pytest.importorskip("wandb")
    return tracked_run(tiny_data, "wandb")


def read_wandb(run_file: Path, *options: str):
    """wandb's own reader of an offline run's transaction log (``wandb leet inspect``)."""
    done = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", *options, str(run_file)],
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout) if options else [json.loads(line) for line in done.stdout.splitlines()]


def test_wandb_offline_runs_continued_by_the_resume(wandb_run):
    run_id = yaml.safe_load((wandb_run / "trackers.yaml").read_text())["wandb"]
    parts = sorted((wandb_run / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(parts) == 2  # the first part and the resumed one: `wandb sync` uploads them as one run
    scalars: dict[str, dict[int, float]] = {}
    for part in parts:
        for record in read_wandb(part / f"run-{run_id}.wandb"):
            if record["type"] == "history":
                item = record["history"]["item"]
                for key, value in item.items():
                    if key.startswith(("step/", "epoch/")):
                        scalars.setdefault(key, {})[record["history"]["step"]["num"]] = value
                if "masks._type" in item:
                    assert item["masks._type"] == "image-file" and item["_step"] in (STEPS, 2 * STEPS)
    assert_epochs_logged(scalars, wandb_run)
    assert_steps_logged(scalars, wandb_run)


def test_wandb_config_and_masks(wandb_run):
    run_id = yaml.safe_load((wandb_run / "trackers.yaml").read_text())["wandb"]
    last = sorted((wandb_run / "wandb").glob(f"offline-run-*-{run_id}"))[-1]
    summary = read_wandb(last / f"run-{run_id}.wandb", "--summary")
    assert summary["run_id"] == run_id and summary["state"] == "finished" and summary["exit_code"] == 0
    config = yaml.safe_load((wandb_run / "config.yaml").read_text())
    assert summary["config"] == config
    assert len(list(last.glob("files/media/images/masks_*.png"))) == 1  # the resumed epoch's figure


# ------------------------------------------------------------------------------------------------ bad input
def test_unknown_logger_is_refused(tiny_data, tmp_path):
    result = pretrain("--data", tiny_data, "--out", tmp_path / "run", "--epochs", 1, "--logger", "nosuch")
    assert result.code == 2 and "--logger" in result.err and "nosuch" in result.err
    assert not (tmp_path / "run").exists()


def test_logger_without_its_library_names_the_install(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: importlib finds no wandb
    result = pretrain("--data", tiny_data, "--out", tmp_path / "run", "--epochs", 1, "--logger", "wandb")
    assert result.code == 2
    assert result.err.strip() == "error: --logger wandb: needs the wandb package: pip install 'partcli[wandb]'"
    assert not (tmp_path / "run").exists()


def test_logger_folder_that_cannot_be_written_is_refused_before_any_work(tiny_data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "tensorboard").write_text("not a folder")
    result = pretrain("--data", tiny_data, "--out", out, "--epochs", 1, "--logger", "tensorboard", "--overwrite")
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    assert "--logger tensorboard" in result.err and "not a folder" in result.err
    assert [p.name for p in out.iterdir()] == ["tensorboard"]  # nothing written


def test_config_file_logger_is_checked(tiny_data, tmp_path):
    config = tmp_path / "options.yaml"
    config.write_text(yaml.safe_dump({"logger": ["tensorboard", "nosuch"]}))
    result = pretrain("--config", config, "--data", tiny_data, "--out", tmp_path / "run", "--epochs", 1)
    assert result.code == 2 and "logger" in result.err and "'nosuch'" in result.err


def test_pseudolabel_logs_its_segmenters_training(tiny_data, tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "pseudo"
    result = run_cli("--quiet", "pseudolabel", "--data", tiny_data, "--out", out, "--frac", 0.5, "--epochs", 1,
                     "--backbone", "resnet18", "--batch-size", 4, "--image-size", 16, "--device", "cpu",
                     "--workers", 0, "--logger", "tensorboard")
    assert result.code == 0, result.output
    segmenter = out / "segmenter"
    events = read_tensorboard(segmenter / "tensorboard")
    with (segmenter / "metrics.csv").open(newline="") as fh:
        row = next(csv.DictReader(fh))
    logged = {e.step: e.value for e in events.Scalars("epoch/train_loss")}
    assert list(logged.values()) == [pytest.approx(float(row["train_loss"]), rel=1e-5)]
