"""The walking skeleton end to end through the CLI: pretrain → run folder → evaluate → info."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import run_cli
from partcli.checkpoint import CHECKPOINT_VERSION, load_checkpoint, load_model
from partcli.config import resolve_config
from partcli.data.writer import DatasetWriter
from partcli.data.synthetic import CLASSES, parts, render_sample
from partcli.evaluate.results_csv import RESULT_COLUMNS
from partcli.models.registry import ModelConfig, build_model
from partcli.train.config import TrainConfig
from partcli.version import __version__

# docs/formats.md (prepared dataset), spelled out here so that a change to the code's constants cannot silently change the contract.
METRICS_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "val_clean_acc", "val_adv_acc", "val_pixel_acc", "seconds",
                   "val_fg_pixel_acc", "val_miou"]
RESULTS_COLUMNS = ["checkpoint", "dataset", "split", "suite", "attack", "norm", "eps", "n", "clean_acc", "adv_acc",
                   "clean_pixel_acc", "adv_pixel_acc", "seconds", "partcli_version"]

def invoke(*args: str):
    result = run_cli("--quiet", *args)
    assert result.code == 0, result.output
    return result


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def tiny_data(module_tmp) -> Path:
    """Synthetic images, but only 10 training, 5 validation and 5 test samples (one per class each) of 32 px."""
    out = module_tmp / "tiny"
    with DatasetWriter(out, list(CLASSES), parts(), name="tiny") as writer:
        for i in range(20):
            split = "train" if i < 10 else "val" if i < 15 else "test"
            image, mask = render_sample(np.random.default_rng([0, i]), i % len(CLASSES), 32)
            writer.add(split, f"{i:02d}", i % len(CLASSES), image, mask=mask)
        writer.finish({"command": "test"})
    return out


@pytest.fixture(scope="module")
def run(tiny_data) -> Path:
    """One epoch of clean bbox training; the YAML file's epochs and lr are overridden by options."""
    config = tiny_data.parent / "options.yaml"
    config.write_text(yaml.safe_dump({"arch": "bbox", "epochs": 7, "lr": 0.5, "wd": 0.001, "seed": 3}))
    out = tiny_data.parent / "run"
    invoke("pretrain", "--config", config, "--data", tiny_data, "--out", out, "--epochs", 1, "--lr", 0.05,
           "--backbone", "resnet18", "--image-size", 32, "--batch-size", 8, "--device", "cpu")
    return out


def test_run_folder_layout(run):
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml", "metrics.csv"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]


def test_config_yaml_is_fully_resolved(run, tiny_data):
    doc = yaml.safe_load((run / "config.yaml").read_text())
    assert set(doc) == {f.name for f in dataclasses.fields(TrainConfig)} | {"partcli_version"}
    assert doc["partcli_version"] == __version__
    assert doc["epochs"] == 1 and doc["lr"] == 0.05  # options beat the YAML file
    assert doc["wd"] == 0.001 and doc["seed"] == 3  # YAML beats the defaults
    assert doc["momentum"] == 0.9 and doc["cseg"] == 0.5 and doc["adv"] == "none"  # defaults written out
    assert doc["data"] == str(tiny_data)
    assert TrainConfig(**{k: v for k, v in doc.items() if k != "partcli_version"}).image_size == 32


def test_a_runs_config_yaml_can_be_given_back_as_config(run):
    doc = yaml.safe_load((run / "config.yaml").read_text())
    cfg = resolve_config(TrainConfig, run / "config.yaml", {"epochs": 2})
    assert dataclasses.asdict(cfg) == {**{k: v for k, v in doc.items() if k != "partcli_version"}, "epochs": 2}


def test_metrics_csv(run):
    header, rows = read_csv(run / "metrics.csv")
    assert header == METRICS_COLUMNS
    assert len(rows) == 1
    row = rows[0]
    assert row["epoch"] == "1" and float(row["lr"]) == pytest.approx(0.05)
    assert row["val_adv_acc"] == ""  # clean training: no adversarial figure
    for key in ("train_acc", "val_clean_acc", "val_pixel_acc"):
        assert 0.0 <= float(row[key]) <= 1.0
    assert float(row["train_loss"]) > 0 and float(row["seconds"]) > 0


def test_checkpoint_loads_and_maps_pixels_to_logits(run):
    path = run / "checkpoints" / "best.pt"
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["format_version"] == CHECKPOINT_VERSION and raw["partcli_version"] == __version__
    state = load_checkpoint(path)
    assert state["epoch"] == 1
    assert state["config"]["model"]["arch"] == "bbox" and state["config"]["model"]["num_classes"] == 5
    assert state["config"]["dataset"]["image_size"] == 32
    for key in ("optimizer", "scheduler", "rng", "best_metric"):
        assert key in state
    model = load_model(path)
    assert not model.training
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()


def test_evaluate_appends_rows(run, tiny_data, tmp_path):
    out = tmp_path / "results" / "eval.csv"
    ckpt = run / "checkpoints" / "best.pt"
    first = invoke("evaluate", "--ckpt", ckpt, "--data", tiny_data, "--out", out, "--batch-size", 8)
    assert "clean acc" in first.output  # --quiet hides progress, not the result table
    invoke("evaluate", "--ckpt", ckpt, "--data", tiny_data, "--out", out, "--split", "val")
    header, rows = read_csv(out)
    assert header == [*RESULTS_COLUMNS, "fg_pixel_acc", "miou"] and RESULTS_COLUMNS == list(RESULT_COLUMNS)
    assert [r["split"] for r in rows] == ["test", "val"]
    row = rows[0]
    assert row["checkpoint"] == str(ckpt) and row["dataset"] == str(tiny_data)
    assert row["n"] == "5" and row["suite"] == "clean" and row["partcli_version"] == __version__
    assert 0.0 <= float(row["clean_acc"]) <= 1.0 and 0.0 <= float(row["clean_pixel_acc"]) <= 1.0
    assert row["adv_acc"] == "" and row["adv_pixel_acc"] == ""
    assert 0.0 <= float(row["fg_pixel_acc"]) <= 1.0 and 0.0 <= float(row["miou"]) <= 1.0  # a part model's segmenter
    assert f"{100 * float(row['miou']):.1f}%" in first.out  # the figure the table printed


def test_info_on_checkpoint(run):
    output = invoke("info", run / "checkpoints" / "best.pt").output
    assert "bbox" in output and "resnet18" in output
    model_cfg = ModelConfig.from_dict(load_checkpoint(run / "checkpoints" / "best.pt")["config"]["model"])
    n_params = sum(p.numel() for p in build_model(model_cfg).parameters())
    assert f"{n_params:,}" in output  # trainable parameters only, not BatchNorm statistics


def test_info_on_dataset(tiny_data):
    output = invoke("info", tiny_data).output
    assert "tiny" in output
    for word in ("quadruped", "biped", "fish", "car", "bird", "train", "val", "test"):
        assert word in output
