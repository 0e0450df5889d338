"""Shared fixtures: a tiny synthetic dataset and tiny trained checkpoints, built once per test session."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)  # tiny models: one thread is as fast and never oversubscribes the 2 CI cores

TINY = dict(backbone="resnet18", image_size=32, batch_size=16, device="cpu", lr=0.05, seed=0)


@pytest.fixture(scope="module")
def module_tmp(request, tmp_path_factory) -> Iterator[Path]:
    """A folder for one test module's shared fixtures, deleted when the module is done: runs write ~100 MB
    checkpoints, and a session that kept every module's folder would fill a small CI disk."""
    path = tmp_path_factory.mktemp(request.module.__name__.removeprefix("test_"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """A 5-class synthetic prepared dataset: 100 samples of 32 px (80/10/10 split)."""
    from partcli.data.synthetic import prepare_synthetic

    out = tmp_path_factory.mktemp("data") / "synth"
    prepare_synthetic(out, n=100, image_size=32, seed=0)
    return out


@pytest.fixture(scope="session")
def bbox_checkpoint(synthetic_data, tmp_path_factory) -> Path:
    """best.pt of a bbox part model (resnet18 encoder) cleanly trained for 2 epochs on ``synthetic_data``."""
    from partcli.train.config import TrainConfig
    from partcli.train.loop import run_training

    out = tmp_path_factory.mktemp("runs") / "bbox"
    run_training(TrainConfig(data=str(synthetic_data), out=str(out), arch="bbox", epochs=2, **TINY))
    return out / "checkpoints" / "best.pt"
