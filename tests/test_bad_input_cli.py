"""What every command does with bad input: exit code 2 and one line without a traceback through the installed console
script, Typer's usage errors in the same form, and output folders that are not empty or cannot be written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bad_input_fixtures import SIZE, assert_user_error, good, good_checkpoint, pretrain  # noqa: F401 (fixtures)
from helpers import CliResult, run_cli
from partcli.data.writer import prepare_output_dir
from partcli.errors import PartcliError


def console_script() -> list[str]:
    script = Path(sys.executable).with_name("partcli")
    return [str(script)] if script.exists() else [sys.executable, "-m", "partcli"]


def test_console_script_exit_code_and_no_traceback(good, tmp_path):
    """User errors through the installed entry point: exit code 2, one line on stderr, no traceback."""
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 8)
    cases = [
        (["pretrain", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r1")], str(tmp_path / "nowhere")),
        (["evaluate", "--ckpt", str(tmp_path / "random.pt"), "--data", str(good), "--out", str(tmp_path / "e.csv")],
         str(tmp_path / "random.pt")),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    procs = [subprocess.Popen([*console_script(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for args, _ in cases]  # concurrently: each spends seconds importing torch
    for proc, (_, culprit) in zip(procs, cases):
        stdout, stderr = proc.communicate(timeout=180)
        assert_user_error(CliResult(proc.returncode, stdout, stderr), culprit)
    assert not (tmp_path / "r1").exists() and not (tmp_path / "e.csv").exists()


def test_typer_usage_errors_are_one_line(good, tmp_path):
    assert_user_error(pretrain(good, tmp_path / "run", "--epochs", "abc"), "'--epochs'", "partcli pretrain --help")
    assert_user_error(run_cli("evaluate", "--data", good), "--ckpt", "--model")
    assert_user_error(run_cli("pretrain", "--epochz", 3), "--epochz")
    assert not (tmp_path / "run").exists()


def test_non_empty_out_is_refused_unless_overwrite(good, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_user_error(pretrain(good, out), "--out", str(out), "--overwrite")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert_user_error(run_cli("prepare", "synthetic", "--out", out, "--n", 40, "--image-size", 16), "--out", str(out))
    assert prepare_output_dir(out, overwrite=True, dataset=False) == out  # a run folder: only run files replaced
    with pytest.raises(PartcliError, match="no dataset.yaml"):  # a dataset would replace the whole folder
        prepare_output_dir(out, overwrite=True)
    assert prepare_output_dir(tmp_path / "empty-or-new", overwrite=False) == tmp_path / "empty-or-new"
    (tmp_path / "file").write_text("x")
    with pytest.raises(PartcliError, match="not a folder"):
        prepare_output_dir(tmp_path / "file", overwrite=True)


# Tests run as root here, and root writes through chmod's read-only bits: an output "inside" a regular file stands
# for a place that cannot be written.
def test_unwritable_outputs_are_one_line_errors(good, good_checkpoint, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for args in (["prepare", "synthetic", "--out", blocker / "ds", "--n", 40, "--image-size", SIZE],
                 ["evaluate", "--ckpt", good_checkpoint, "--data", good, "--out", blocker / "e.csv"],
                 ["attack", "--ckpt", good_checkpoint, "--data", good, "--suite", "pgd", "--steps", 1, "--restarts", 1,
                  "--no-hygiene", "--out", blocker / "a.csv"]):
        assert_user_error(run_cli("--quiet", *args), f"--out {blocker}", "cannot write there")
    assert_user_error(pretrain(good, blocker / "run"), f"--out {blocker / 'run'}",
                      "cannot write there (Not a directory)")
    assert blocker.read_text() == "not a folder"
