"""What the bad-input tests of every command share: a tiny valid dataset (and a per-test copy to break), a checkpoint
for it, and the one check every refusal passes: exit code 2, one ``error:`` line naming the culprits, no traceback."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import CliResult, run_cli, write_tiny_checkpoint, write_tiny_dataset

SIZE = 16


@pytest.fixture(scope="module")
def good(module_tmp) -> Path:
    """A valid 2-class, 2-part dataset of 16-px images: 2 train, 1 val, 1 test sample."""
    return write_tiny_dataset(module_tmp / "good", SIZE)


@pytest.fixture
def data(good, tmp_path) -> Path:
    """A private copy of the good dataset for a test to break."""
    return Path(shutil.copytree(good, tmp_path / "data"))


@pytest.fixture(scope="module")
def good_checkpoint(module_tmp) -> Path:
    """A checkpoint with random weights for the ``good`` dataset."""
    return write_tiny_checkpoint(module_tmp / "ckpt", SIZE)


def assert_user_error(result: CliResult, *names: str) -> None:
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    for name in names:
        assert name in lines[0], f"{name!r} not named in: {lines[0]}"


def pretrain(data: Path, out: Path, *extra: object) -> CliResult:
    """One quiet pretrain epoch on the CPU with batches of 2 at the tiny datasets' image size."""
    return run_cli("--quiet", "pretrain", "--data", data, "--out", out, "--epochs", 1, "--image-size", SIZE,
                   "--batch-size", 2, "--device", "cpu", *extra)


def first_row(data: Path, split: str) -> dict[str, str]:
    """The first sample of ``split``'s CSV, by column name."""
    lines = (data / f"{split}.csv").read_text().splitlines()
    return dict(zip(lines[0].split(","), lines[1].split(",")))
