"""What many tests share: tiny models, attack samples without masks, and one way to run the CLI.

Session fixtures (datasets and checkpoints built once) stay in ``conftest.py``; models of exactly known robustness
in ``known_robustness.py``.
"""
from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image
from torch import nn

from partcli.attacks.samples import AttackSamples
from partcli.data.contract import Part
from partcli.data.writer import DatasetWriter
from partcli.models.part_model import Classifier
from partcli.models.registry import ModelConfig, build_model


def tiny_conv(num_classes: int, seed: int = 0) -> nn.Module:
    """A one-conv network for 3×8×8 inputs, in eval mode: fast enough for AutoAttack in a unit test."""
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, num_classes)]
    return nn.Sequential(*layers).eval()


def tiny_cnn(num_classes: int = 5) -> nn.Module:
    """A two-conv baseline with BatchNorm (a partcli ``Classifier``: [0, 1] images in, logits out)."""
    torch.manual_seed(0)
    return Classifier(nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, num_classes)))


def tiny_part_model() -> nn.Module:
    """An untrained bbox part model with a resnet18 encoder for the synthetic dataset's 5 classes and 19 parts."""
    torch.manual_seed(0)
    return build_model(ModelConfig(arch="bbox", backbone="resnet18", num_classes=5, num_parts=19,
                                   part_to_class=[i // 4 for i in range(19)]))


def attack_samples(x: torch.Tensor, y: torch.Tensor) -> AttackSamples:
    """Samples for ``attack_model`` without part masks."""
    n = len(y)
    return AttackSamples(x, y, torch.full((n, *x.shape[2:]), -1, dtype=torch.int16), torch.zeros(n, dtype=torch.bool),
                         list(range(n)), [f"{i}.png" for i in range(n)])


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


def run_cli(*args: object) -> CliResult:
    """Run the console-script entry point (``partcli.cli.main``: one-line errors, exit codes) in-process; an
    unexpected exception propagates with its traceback."""
    from partcli.cli import main

    out, err = io.StringIO(), io.StringIO()
    with mock.patch.object(sys, "argv", ["partcli", *map(str, args)]), redirect_stdout(out), redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return CliResult(code, out.getvalue(), err.getvalue())


def write_tiny_dataset(out: Path, size: int = 16) -> Path:
    """A valid 2-class, 2-part prepared dataset of ``size``-px images: 2 train, 1 val, 1 test sample."""
    rng = np.random.default_rng(0)
    with DatasetWriter(out, ["a", "b"], [Part("a/x", "a"), Part("b/y", "b")], name="good") as writer:
        for i, split in enumerate(["train", "train", "val", "test"]):
            image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
            mask = np.zeros((size, size), np.uint8)
            mask[size // 4:3 * size // 4, size // 4:3 * size // 4] = 1 + i % 2
            writer.add(split, f"s{i}", i % 2, image, mask=mask)
        writer.finish({"command": "test"})
    return out


def write_tiny_checkpoint(folder: Path, image_size: int = 16) -> Path:
    """A valid partcli checkpoint with random weights (bbox, resnet18 encoder) for ``write_tiny_dataset``'s 2 classes
    and 2 parts: ``folder/good.pt``."""
    from partcli.checkpoint import save_checkpoint

    cfg = ModelConfig(arch="bbox", backbone="resnet18", num_classes=2, num_parts=2, part_to_class=[0, 1])
    path = folder / "good.pt"
    save_checkpoint(path, {"config": {"model": cfg.to_dict(), "dataset": {"image_size": image_size}},
                           "model": build_model(cfg).state_dict()})
    return path
