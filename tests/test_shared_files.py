"""Shared machines and hostile files: results CSVs that are never corrupted (locked appends, cut-off rows refused or
repaired, malformed rows skipped by name), files that follow the umask, and output errors before the work."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bad_input_fixtures import SIZE, assert_user_error, good  # noqa: F401 (good: a fixture)
from helpers import run_cli, write_tiny_checkpoint
from partcli.errors import PartcliError
from partcli.evaluate.results_csv import RESULT_COLUMNS, append_results, check_results_file, parse_results

HEADER = ",".join(RESULT_COLUMNS) + "\r\n"


def row_line(checkpoint: str, n: int = 1) -> str:
    """A complete results row as ``append_results`` writes it (14 cells)."""
    return f"{checkpoint},d,test,clean,none,Linf,0,{n},0.5,,,,1,0.1.0\r\n"


def row(checkpoint: str, n: int = 1) -> dict:
    return {"checkpoint": checkpoint, "dataset": "d", "split": "test", "suite": "clean", "attack": "none", "eps": 0.0,
            "n": n, "clean_acc": 0.5, "seconds": 1.0}


@pytest.fixture(scope="module")
def ckpt(module_tmp) -> Path:
    return write_tiny_checkpoint(module_tmp, SIZE)


@pytest.fixture
def umask():
    """Set the process umask for one test (``umask(0o027)``); the previous one is restored afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


# ------------------------------------------------------------------------------ results CSV: reading and appending
def test_parse_results_names_the_lines_of_malformed_rows():
    text = HEADER + row_line("a") + "x,y\r\n\r\n" + row_line("b") + 'c,"unclosed'
    parsed = parse_results(text)
    assert parsed.header == list(RESULT_COLUMNS)
    assert [(line, cells[0]) for line, cells in parsed.rows] == [(2, "a"), (5, "b")]  # line 4 is blank
    assert parsed.malformed == [3, 6] and parsed.last_line == 6 and not parsed.ends_with_newline
    quoted = parse_results(HEADER + '"a\r\nb",' + row_line("x").split(",", 1)[1] + row_line("c"))
    assert [(line, cells[0]) for line, cells in quoted.rows] == [(2, "a\r\nb"), (4, "c")]  # a cell over two lines


def test_a_cut_off_last_row_is_refused_not_glued(tmp_path):
    path = tmp_path / "r.csv"
    cut = HEADER + row_line("a") + "partial,row,with"
    path.write_text(cut, newline="")
    with pytest.raises(PartcliError) as err:
        append_results(path, [row("b")])
    assert str(err.value) == (f"--out {path}: its last row (line 3) is cut off or malformed (not 14 cells); move the "
                              "file aside or delete its last line")
    with pytest.raises(PartcliError, match="line 3"):
        check_results_file(path)
    assert path.read_bytes().decode() == cut


def test_a_complete_last_row_without_line_end_is_repaired(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(HEADER + row_line("a").rstrip("\r\n"), newline="")
    check_results_file(path)
    append_results(path, [row("b")])
    text = path.read_bytes().decode()
    assert text.startswith(HEADER + row_line("a") + "b,d,test,clean,none,Linf,0,1,0.5,,,,1,")
    parsed = parse_results(text)
    assert [cells[0] for _, cells in parsed.rows] == ["a", "b"] and not parsed.malformed


def test_results_out_that_is_a_folder_or_has_other_columns(tmp_path):
    with pytest.raises(PartcliError, match=f"--out {tmp_path}: a folder; give the CSV file"):
        check_results_file(tmp_path)
    other = tmp_path / "other.csv"
    other.write_text("epoch,lr\n1,0.1\n")
    with pytest.raises(PartcliError, match="exists with other columns"):
        check_results_file(other)
    check_results_file(tmp_path / "new" / "deeper" / "r.csv")
    assert not (tmp_path / "new").exists()  # a check creates nothing


APPENDER = """
import sys
from partcli.evaluate.results_csv import append_results
path, who = sys.argv[1], sys.argv[2]
for i in range(20):
    append_results(path, [{"checkpoint": f"{who}-{i}", "dataset": who * 2000, "n": i}])
"""


def append_concurrently(path: Path, writers: list[str]) -> list[subprocess.CompletedProcess]:
    """Run one process per writer, each appending 20 rows (of 2,000+ bytes: larger than one pipe-sized write) to
    ``path`` one call at a time, all at once."""
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(path), who], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for who in writers]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate()) for p in procs]


def test_concurrent_appends_lose_and_glue_nothing(tmp_path):
    writers = ["a", "b", "c", "d"]
    fresh = tmp_path / "fresh.csv"  # the file does not exist yet: exactly one header
    unterminated = tmp_path / "unterminated.csv"  # its last row lacks a line end: repaired once
    unterminated.write_text(HEADER + row_line("old").rstrip("\r\n"), newline="")
    for path, before in ((fresh, []), (unterminated, ["old"])):
        assert all(p.returncode == 0 for p in append_concurrently(path, writers))
        text = path.read_bytes().decode()
        parsed = parse_results(text)
        assert text.count("checkpoint,dataset") == 1 and not parsed.malformed and "\r\n\r\n" not in text
        names = [cells[0] for _, cells in parsed.rows]
        assert sorted(names) == sorted(before + [f"{w}-{i}" for w in writers for i in range(20)])
        for w in writers:  # each writer's rows in its own order, each row whole
            assert [n for n in names if n.startswith(f"{w}-")] == [f"{w}-{i}" for i in range(20)]
        assert all(cells[1] == cells[0].split("-")[0] * 2000 for _, cells in parsed.rows if cells[0] != "old")
    cut = tmp_path / "cut.csv"  # a cut-off last row: every writer is refused, the file is left as it was
    cut.write_text(HEADER + row_line("old") + "partial,row,with", newline="")
    before = cut.read_bytes()
    for proc in append_concurrently(cut, writers):
        assert proc.returncode == 1 and f"--out {cut}: its last row (line 3) is cut off" in proc.stderr
    assert cut.read_bytes() == before


# ------------------------------------------------------------------------------ readers skip malformed rows by name
def test_compare_names_and_skips_malformed_rows(tmp_path):
    from test_compare import fake_checkpoint

    from partcli.evaluate.compare import compare_results

    path = tmp_path / "r.csv"
    ckpts = [fake_checkpoint(tmp_path, f"rn{s}", "resnet", s) for s in range(3)]
    lines = [row_line(ckpts[0]), "too,many," + row_line(ckpts[1]), row_line(ckpts[1]), row_line(ckpts[2]),
             row_line(ckpts[2]).split(",0.5,")[0]]  # lines 2-6; 3: 16 cells, 6: cut off
    path.write_text(HEADER + "".join(lines), newline="")
    result = compare_results([path], "arch")
    assert f"{path}: lines 3, 6 skipped: not 14 cells as in its header (a row cut off, or edited by hand)" \
        in result.notes
    assert result.summary["n_models"].tolist() == [3]  # the good rows: one per checkpoint
    cli = run_cli("compare", path)
    assert cli.code == 0 and "lines 3, 6 skipped" in " ".join(cli.err.split()), cli.err


def test_report_names_and_skips_malformed_rows(tmp_path):
    from test_report import make_run, rows_for

    from partcli.report.report import build_report

    run = make_run(tmp_path / "runs", "rn-pgd", arch="resnet", adv="pgd")
    path = tmp_path / "results" / "attacks.csv"
    append_results(path, rows_for(run, 0.812, pgd=0.291))
    good_text = path.read_bytes().decode()
    path.write_text(good_text + "a,b," + good_text.splitlines()[1] + "\r\n" + "cut,off", newline="")
    result = build_report([tmp_path], tmp_path / "report")
    assert f"{path}: lines 3, 4 skipped: not 14 cells as in its header (a row cut off, or edited by hand)" \
        in result.skipped
    assert result.table1_values["resnet18 baseline, PGD", "synth", "PGD"].mean == pytest.approx(0.291)


# ------------------------------------------------------------------------------ permissions follow the umask
@pytest.mark.parametrize("mask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_written_files_follow_the_umask(mask, file_mode, folder_mode, umask, tmp_path):
    from partcli.checkpoint import save_checkpoint
    from partcli.evaluate.compare import write_summary
    from partcli.files import write_atomically
    from partcli.robustness.corruptions import _atomic_write
    from partcli.sweep.summary import write_summary as write_sweep_summary
    from partcli.train.run_files import _copy_atomically

    umask(mask)
    save_checkpoint(tmp_path / "new" / "best.pt", {"model": {}})
    _copy_atomically(tmp_path / "new" / "best.pt", tmp_path / "new" / "last.pt")
    append_results(tmp_path / "results" / "r.csv", [row("a")])
    write_summary(pd.DataFrame({"a": [1]}), tmp_path / "summary.csv")
    write_sweep_summary(tmp_path / "sweep.csv", [], [])
    _atomic_write(tmp_path / "0.png", b"png")
    write_atomically(tmp_path / "text.yaml", "a: 1\n")
    written = ["new/best.pt", "new/last.pt", "results/r.csv", "results/r.csv.lock", "summary.csv", "sweep.csv",
               "0.png", "text.yaml"]
    assert {name: oct((tmp_path / name).stat().st_mode & 0o777) for name in written} == \
        {name: oct(file_mode) for name in written}
    for folder in ("new", "results"):
        assert oct((tmp_path / folder).stat().st_mode & 0o777) == oct(folder_mode)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_a_run_folder_follows_the_umask(good, umask, tmp_path):
    umask(0o027)  # neither 0o600 (mkstemp) nor the usual 0o644: files 0o640, folders 0o750
    out = tmp_path / "run"
    result = run_cli("--quiet", "pretrain", "--data", good, "--out", out, "--epochs", 1, "--image-size", SIZE,
                     "--batch-size", 2, "--device", "cpu")
    assert result.code == 0, result.err
    modes = {str(p.relative_to(out)): oct(p.stat().st_mode & 0o777) for p in [out, *out.rglob("*")]}
    assert modes == {".": "0o750", "checkpoints": "0o750", "config.yaml": "0o640", "metrics.csv": "0o640",
                     "checkpoints/best.pt": "0o640", "checkpoints/last.pt": "0o640"}


def test_an_aborted_atomic_write_leaves_the_old_file(tmp_path):
    from partcli.files import atomic_write

    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path, text=True) as fh:
        fh.write("half of the new")
        raise RuntimeError("killed")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


# ------------------------------------------------------------------------------ errors before the work, and alone
@pytest.mark.parametrize("case", ["folder", "other-columns", "cut-off"])
def test_evaluate_checks_out_before_loading_the_model(case, good, ckpt, tmp_path, monkeypatch):
    import partcli.evaluate.evaluate as evaluate

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(evaluate, "load_for_dataset", never)
    out = tmp_path / "results"
    out.mkdir()
    if case != "folder":
        out = out / "r.csv"
        out.write_text("epoch,lr\n1,0.1\n" if case == "other-columns" else HEADER + "cut,off", newline="")
    expected = {"folder": "a folder", "other-columns": "exists with other columns", "cut-off": "line 2"}[case]
    result = run_cli("evaluate", "--ckpt", ckpt, "--data", good, "--out", out)
    assert_user_error(result, f"--out {out}", expected)
    assert result.out == ""


def test_evaluate_leaves_no_results_folder_when_it_fails(good, ckpt, tmp_path):
    data = Path(shutil.copytree(good, tmp_path / "data"))
    mask = (data / "test.csv").read_text().splitlines()[1].split(",")[1]
    Image.fromarray(np.full((SIZE, SIZE), 3, np.uint8)).save(data / mask)  # part id 3 > K=2: found mid-evaluation
    out = tmp_path / "results" / "e.csv"
    result = run_cli("--quiet", "evaluate", "--ckpt", ckpt, "--data", data, "--out", out)
    assert_user_error(result, str(data / mask), "part id 3")
    assert not (tmp_path / "results").exists()


def test_compare_out_is_refused_before_anything_is_printed(tmp_path):
    from test_compare import fake_checkpoint

    path = tmp_path / "r.csv"
    path.write_text(HEADER + row_line(fake_checkpoint(tmp_path, "rn", "resnet", 0)), newline="")
    folder = tmp_path / "folder"
    folder.mkdir()
    result = run_cli("compare", path, "--out", folder)
    assert_user_error(result, f"--out {folder}", "a folder")
    assert result.out == ""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = run_cli("compare", path, "--out", blocker / "summary.csv")
    assert_user_error(result, f"--out {blocker / 'summary.csv'}", "cannot write there")
    assert result.out == ""


def test_pretrain_reports_an_unwritable_out_before_any_other_line(good, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("pretrain", "--data", good, "--out", blocker / "run", "--epochs", 1, "--image-size", SIZE,
                     "--device", "cpu")  # not --quiet: the set-up's info lines ("device ...") would show
    assert_user_error(result, f"--out {blocker / 'run'}", "cannot write there (Not a directory)")
    assert result.out == ""


def test_a_plain_pickle_is_refused_in_one_line_without_torch_warnings(good, tmp_path):
    import pickle

    from partcli.checkpoint import load_checkpoint

    path = tmp_path / "old.pt"
    path.write_bytes(pickle.dumps({"format_version": 3, "model": {}}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(PartcliError, match="not a partcli checkpoint"):
            load_checkpoint(path)
    assert [str(w.message) for w in caught] == []
    legacy = tmp_path / "legacy.pt"
    torch.save({"format_version": 3, "model": {}}, legacy, _use_new_zipfile_serialization=False)
    result = run_cli("evaluate", "--ckpt", legacy, "--data", good, "--out", tmp_path / "e.csv")
    assert_user_error(result, str(legacy), "not a partcli checkpoint")


def test_a_file_system_that_turns_read_only_mid_run_is_one_line(good, tmp_path, monkeypatch):
    import errno

    import partcli.files

    def read_only(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(partcli.files, "_create_beside", read_only)  # the first checkpoint's temp file
    out = tmp_path / "run"
    result = run_cli("--quiet", "pretrain", "--data", good, "--out", out, "--epochs", 1, "--image-size", SIZE,
                     "--batch-size", 2, "--device", "cpu")
    assert_user_error(result, f"--out {out}", "Read-only file system")
