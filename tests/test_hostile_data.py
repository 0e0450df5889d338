"""Hostile prepared datasets and options (shared machines and hostile files): each refused in one line naming the
file or option, exit 2, nothing left, and before any heavy work."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bad_input_fixtures import SIZE, data, good  # noqa: F401 - the same tiny dataset and its per-test copy
from helpers import run_cli


def one_line(result, *names: str) -> str:
    assert result.code == 2, result.output
    assert "Traceback" not in result.err and "Warning" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    for name in names:
        assert name in lines[0], f"{name!r} not in {lines[0]}"
    return lines[0]


def png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width × height RGB pixels, with (almost) no pixel data: what a decompression bomb
    looks like to a reader that trusts the header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_a_huge_image_is_refused_from_its_header_naming_the_file_and_the_limit(data):
    png_header(data / "images" / "test" / "s3.png", 20000, 20000)
    line = one_line(run_cli("info", data), "s3.png", "20000x20000", "PARTCLI_MAX_IMAGE_PIXELS")
    assert "DecompressionBomb" not in line


def test_the_pixel_limit_can_be_raised_and_lowered(data, monkeypatch):
    monkeypatch.setenv("PARTCLI_MAX_IMAGE_PIXELS", "100")  # 16 × 16 = 256 pixels: now too many
    one_line(run_cli("info", data), "16x16", "PARTCLI_MAX_IMAGE_PIXELS")
    monkeypatch.setenv("PARTCLI_MAX_IMAGE_PIXELS", "1000")
    assert run_cli("info", data).code == 0


def test_an_unreadable_folder_is_one_line(data, monkeypatch):
    """Root may enter every folder, so the permission error is simulated where pathlib raises it."""
    real = Path.is_dir

    def is_dir(self):
        if self == data:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "is_dir", is_dir)
    one_line(run_cli("info", data), str(data), "permission denied")


def test_a_split_csv_that_is_not_utf8_is_refused_and_a_bom_is_accepted(data):
    csv = data / "train.csv"
    text = csv.read_text()
    csv.write_bytes(text.replace("s0", "s\xe90").encode("latin-1"))
    one_line(run_cli("info", data), "train.csv", "not UTF-8")
    csv.write_bytes(b"\xef\xbb\xbf" + text.encode())  # a spreadsheet's UTF-8 byte-order mark
    assert run_cli("info", data).code == 0


def test_paths_that_leave_the_dataset_are_refused(data, tmp_path):
    outside = tmp_path / "outside.png"
    shutil.copy(data / "images" / "test" / "s3.png", outside)
    csv = data / "test.csv"
    original = csv.read_text()
    csv.write_text(original.replace("images/test/s3.png", "../outside.png"))
    one_line(run_cli("info", data), "test.csv:2", "outside the dataset folder")
    csv.write_text(original)
    link = data / "images" / "test" / "s3.png"
    link.unlink()
    link.symlink_to(outside)  # a symbolic link out of the dataset
    one_line(run_cli("info", data), "test.csv:2", str(outside))


def test_a_float_mask_is_refused_not_truncated(data):
    mask = np.full((SIZE, SIZE), 0.5, np.float32)
    mask[4:12, 4:12] = 1.5
    Image.fromarray(mask, mode="F").save(data / "masks" / "test" / "s3.tif")
    csv = data / "test.csv"
    csv.write_text(csv.read_text().replace("masks/test/s3.png", "masks/test/s3.tif"))
    one_line(run_cli("info", data), "s3.tif", "floating-point")


def test_a_duplicated_row_is_refused(data):
    csv = data / "train.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([*lines, lines[1]]) + "\n")
    one_line(run_cli("info", data), "train.csv:4", "listed again (first on line 2)")


def test_overwrite_never_empties_a_folder_that_is_not_a_dataset(tmp_path):
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    one_line(run_cli("prepare", "synthetic", "--out", out, "--n", 40, "--overwrite"), str(out), "no dataset.yaml")
    assert (out / "thesis.tex").read_text() == "years of work"


def test_an_interrupted_pseudolabel_subset_is_not_a_dataset_to_evaluate(data, tmp_path):
    from partcli.data.contract import INTERNAL
    import yaml

    doc = yaml.safe_load((data / "dataset.yaml").read_text())
    doc[INTERNAL] = "the training subset of `partcli pseudolabel --out x`, removed when that run finishes"
    (data / "dataset.yaml").write_text(yaml.safe_dump(doc))
    one_line(run_cli("info", data), "training subset", "not a dataset to evaluate")


@pytest.mark.parametrize("args, names", [
    (["prepare", "synthetic", "--out", "OUT", "--image-size", 200000], ["--image-size", "2048"]),
    (["prepare", "synthetic", "--out", "OUT", "--n", 2000000000], ["--n", "1,000,000"]),
    (["prepare", "synthetic", "--out", "OUT", "--seed", 99999999999999999999], ["--seed"]),
    (["train", "--data", "DATA", "--out", "OUT", "--arch", "downsampled", "--pool", 0], ["--pool 0"]),
    (["train", "--data", "DATA", "--out", "OUT", "--arch", "resnet", "--pool", -4], ["--pool -4"]),
    (["train", "--data", "DATA", "--out", "OUT", "--seed", 2**40], ["--seed"]),
])
def test_option_ranges(args, names, data, tmp_path):
    out = tmp_path / "out"
    args = [out if a == "OUT" else data if a == "DATA" else a for a in args]
    one_line(run_cli(*args), *names)
    assert not out.exists()


def test_training_options_are_refused_before_torch_is_imported(tmp_path):
    """`train --eps 8/0` under load took 59 s to refuse: the check ran after the heavy imports."""
    code = ("import sys\nfrom partcli.cli import main\n"
            f"sys.argv = ['partcli', 'train', '--data', {str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}, "
            "'--pool', '0']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    print('exit', e.code, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert done.stdout.strip() == "exit 2 False", done.stdout + done.stderr


@pytest.mark.parametrize("umask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_a_prepared_dataset_follows_the_umask(tmp_path, umask, folder_mode, file_mode):
    """Another account on a shared machine can read a dataset prepared under umask 022 (mkdtemp made it private)."""
    previous = os.umask(umask)
    try:
        out = tmp_path / "synth"
        assert run_cli("prepare", "synthetic", "--out", out, "--n", 40, "--image-size", 16).code == 0
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == folder_mode
    assert (out / "images").stat().st_mode & 0o777 == folder_mode
    assert (out / "dataset.yaml").stat().st_mode & 0o777 == file_mode
    assert (out / "train.csv").stat().st_mode & 0o777 == file_mode


def bad_outs(tmp_path: Path) -> dict[str, Path]:
    """Results files rows cannot be appended to: a folder, a CSV with other columns, a place inside a file."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    (tmp_path / "a-file").write_text("not a folder")
    return {"a folder": tmp_path / "folder", "exists with other columns": tmp_path / "other.csv",
            "cannot write there": tmp_path / "a-file" / "results.csv"}


@pytest.mark.parametrize("command", ["attack", "robustness"])
def test_a_bad_results_file_is_refused_before_the_model_is_loaded(command, data, tmp_path):
    """`attack --out FOLDER` ran the whole attack (device line, progress bars) before refusing: the checkpoint given
    here does not exist, so only a --out checked first is named."""
    missing = tmp_path / "missing.pt"
    for reason, out in bad_outs(tmp_path).items():
        one_line(run_cli(command, "--data", data, "--ckpt", missing, "--device", "cpu", "--out", out), "--out",
                 reason)
    assert not any((tmp_path / "folder").iterdir())
    assert (tmp_path / "other.csv").read_text() == "a,b\n1,2\n"


@pytest.mark.parametrize("command", ["pretrain", "train"])
def test_training_reports_an_unwritable_out_before_the_device_line(command, data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    one_line(run_cli(command, "--data", data, "--out", blocker / "run", "--arch", "resnet", "--epochs", 1,
                     "--device", "cpu"), f"--out {blocker / 'run'}", "cannot write there")


@pytest.mark.parametrize("option, value", [("--eps", "8/0"), ("--steps", "0"), ("--batch-size", "0"),
                                           ("--step-size", "0"), ("--seed", str(2**40))])
def test_attack_options_are_refused_before_torch_is_imported(option, value, tmp_path):
    """`attack --eps 8/0` took up to a minute to refuse under load: the check ran after torch, timm and AutoAttack
    were imported."""
    code = ("import sys\nfrom partcli.cli import main\n"
            f"sys.argv = ['partcli', 'attack', '--data', {str(tmp_path)!r}, '--ckpt', {str(tmp_path / 'c.pt')!r}, "
            f"{option!r}, {value!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    print('exit', e.code, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert done.stdout.strip() == "exit 2 False", done.stdout + done.stderr
    assert done.stderr.startswith(f"error: {option}") and done.stderr.count("\n") == 1, done.stderr


def test_a_file_that_is_not_an_exported_program_is_one_line_without_torchs_log(data, tmp_path, capfd):
    """torch.export.load logs a 19-line traceback before it raises on a pickle or a foreign zip archive."""
    import pickle

    import torch

    pickled, foreign = tmp_path / "stylizer.pkl", tmp_path / "weights.pt2"
    pickled.write_bytes(pickle.dumps({"not": "a program"}))
    torch.save({"w": torch.zeros(2)}, foreign)
    runs = {pickled: ["robustness", "--data", data, "--ckpt", tmp_path / "missing.pt", "--suite", "shape-texture",
                      "--device", "cpu", "--out", tmp_path / "r.csv", "--stylizer", pickled],
            foreign: ["evaluate", "--data", data, "--model", foreign, "--device", "cpu", "--out", tmp_path / "e.csv"]}
    for path, args in runs.items():
        one_line(run_cli(*args), str(path), "not a torch.export program")
        captured = capfd.readouterr().err  # what torch's logger wrote to the process's stderr
        assert "torch/export" not in captured and "Traceback" not in captured, captured
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "e.csv").exists()


def test_a_bad_results_file_stops_every_rank_together(data, tmp_path):
    """Under torchrun rank 0 alone checks --out; the other ranks stop with its line instead of waiting for it."""
    from test_sharded_eval import on_threads

    from partcli.attacks.suite import run_attack_suite
    from partcli.errors import PartcliError
    from partcli.robustness.suite import run_robustness

    out, missing = bad_outs(tmp_path)["a folder"], tmp_path / "missing.pt"
    for run in (lambda shard: run_attack_suite(missing, data, out=out, shard=shard, suite="pgd", device="cpu"),
                lambda shard: run_robustness(missing, data, out=out, suite="foreground", shard=shard)):
        failures = on_threads(2, run)
        assert all(isinstance(f, PartcliError) for f in failures), failures
        assert str(failures[0]) == str(failures[1]) and str(failures[0]).startswith(f"--out {out}: a folder")
