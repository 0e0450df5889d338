"""Long jobs people can watch and script: progress lines off a terminal (a log file, SLURM), results on stdout and
logs on stderr, ``--json`` everywhere, ``--strict``, ``-q`` after the command, and what Ctrl-C says it kept."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch

from helpers import run_cli
from partcli.train.loop import Trainer
from test_pretrain_cli import run, tiny_data  # noqa: F401 - a 1-epoch bbox run on a 10-image dataset

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
CONSTANT = '''import torch


class Constant(torch.nn.Module):
    """Logits that do not depend on the input: a collapsed model, which the hygiene checklist flags."""

    def forward(self, x):
        return torch.tensor([[5.0, 0, 0, 0, 0]]).repeat(len(x), 1) + 0 * x.mean()


def build():
    return Constant()
'''


def pretrain(data: Path, out: Path, *extra: object):
    return run_cli("pretrain", "--data", data, "--out", out, "--arch", "resnet", "--backbone", "resnet18",
                   "--image-size", 32, "--batch-size", 2, "--epochs", 1, "--device", "cpu", *extra)


def test_training_off_a_terminal_prints_a_line_every_log_interval_steps_with_the_runs_eta(tiny_data, tmp_path):
    result = pretrain(tiny_data, tmp_path / "run", "--log-interval", 2)
    assert result.code == 0, result.output
    lines = [line for line in result.err.splitlines() if " epoch 1/1 " in line]
    assert len(lines) == 2, result.err  # 10 images in batches of 2: steps 2 and 4 (the fifth is not a multiple)
    pattern = (rf"^{STAMP} epoch 1/1 (2|4)/5 \(\d+%\) \d+:\d\d:\d\d elapsed, ETA \d+:\d\d:\d\d \| loss \d+\.\d{{4}} "
               rf"acc \d+\.\d% lr \S+ \d+\.\d img/s \| run (40|80)% ETA \d+:\d\d:\d\d$")
    assert all(re.match(pattern, line) for line in lines), lines
    quiet = pretrain(tiny_data, tmp_path / "quiet", "--log-interval", 1, "-q")  # -q after the command
    assert quiet.code == 0 and " epoch 1/1 " not in quiet.err and "device" not in quiet.err, quiet.err


def test_a_log_interval_below_1_is_refused_before_any_work(tiny_data, tmp_path):
    bad = pretrain(tiny_data, tmp_path / "bad", "--log-interval", 0)
    assert bad.code == 2 and bad.err.startswith("error: --log-interval 0: must be at least 1"), bad.err
    assert not (tmp_path / "bad").exists()


def test_ctrl_c_says_what_was_kept_and_the_command_that_continues(tiny_data, tmp_path, monkeypatch):
    original = Trainer._train_epoch

    def interrupted_in_epoch_2(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch)

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_train_epoch", interrupted_in_epoch_2)
        first = pretrain(tiny_data, out, "--epochs", 2)
    assert first.code == 130
    last = first.err.strip().splitlines()[-1]
    command = f"partcli pretrain --out {out} --resume"
    assert last == f"error: interrupted; {out} keeps epoch 1 (checkpoints/last.pt); continue with: {command}"
    resumed = run_cli(*command.split()[1:], "--log-interval", 1)  # how often it prints may change on resume
    assert resumed.code == 0 and "resuming" in resumed.err, resumed.output
    assert len([line for line in resumed.err.splitlines() if " epoch 2/2 " in line]) == 5
    assert [r["epoch"] for r in csv.DictReader((out / "metrics.csv").open())] == ["1", "2"]

    with monkeypatch.context() as patch:  # interrupted before any epoch ended: nothing is kept
        patch.setattr(Trainer, "_train_epoch", lambda self, epoch: (_ for _ in ()).throw(KeyboardInterrupt))
        early = pretrain(tiny_data, tmp_path / "early")
    assert early.code == 130 and early.err.strip().endswith("error: interrupted; no epoch had finished, nothing "
                                                            "was kept")


def test_results_go_to_stdout_and_logs_to_stderr(run, tiny_data, tmp_path):
    ckpt = run / "checkpoints" / "best.pt"
    evaluated = run_cli("evaluate", "--ckpt", ckpt, "--data", tiny_data, "--out", tmp_path / "e.csv")
    assert evaluated.code == 0
    assert "clean acc" in evaluated.out and "clean acc" not in evaluated.err  # the table
    assert "appended to" in evaluated.err and "appended to" not in evaluated.out
    assert run_cli("--version").out.startswith("partcli ")
    info = run_cli("info", ckpt)
    assert "resnet18" in info.out and info.err == ""
    as_json = run_cli("info", ckpt, "--json")
    summary = json.loads(as_json.out)
    assert summary["config"]["model"]["arch"] == "bbox" and summary["config"]["train"]["lr"] == 0.05
    assert summary["epoch"] == 1 and summary["kind"] == "checkpoint"
    dataset = json.loads(run_cli("info", tiny_data, "--json").out)
    assert dataset["counts"]["train"]["fish"] == 2 and len(dataset["classes"]) == 5
    both = run_cli("info", "--models", "--json")
    assert both.code == 2 and "--json" in both.err


def test_evaluate_json_on_stdout_matches_the_csv_row_and_compare_reads_miou(run, tiny_data, tmp_path):
    out = tmp_path / "e.csv"
    ckpt = run / "checkpoints" / "best.pt"
    result = run_cli("evaluate", "--ckpt", ckpt, "--data", tiny_data, "--out", out, "--json")
    assert result.code == 0, result.output
    (record,) = [json.loads(line) for line in result.out.splitlines()]  # stdout holds JSON only: the table is on stderr
    (row,) = csv.DictReader(out.open())
    assert record["miou"] == pytest.approx(float(row["miou"]), rel=1e-5) and record["clean_acc"] == float(row["clean_acc"])
    run_cli("evaluate", "--ckpt", ckpt, "--data", tiny_data, "--out", out, "--split", "val")
    compared = run_cli("compare", out, "--metric", "miou", "--by", "split", "--json")
    assert compared.code == 0, compared.output
    groups = {r["group"]: r for r in map(json.loads, compared.out.splitlines())}
    assert set(groups) == {"test", "val"} and groups["test"]["mean"] == pytest.approx(float(row["miou"]))


def test_an_evaluate_csv_of_earlier_columns_gains_the_new_ones(run, tiny_data, tmp_path):
    out = tmp_path / "old.csv"
    header = ("checkpoint,dataset,split,suite,attack,norm,eps,n,clean_acc,adv_acc,clean_pixel_acc,adv_pixel_acc,"
              "seconds,partcli_version")
    out.write_text(f"{header}\nold.pt,d,test,clean,none,Linf,0,5,0.4,,0.5,,1.0,0.1.0\n")
    result = run_cli("evaluate", "--ckpt", run / "checkpoints" / "best.pt", "--data", tiny_data, "--out", out)
    assert result.code == 0 and "added the column(s) fg_pixel_acc, miou" in result.err, result.output
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["checkpoint"] == "old.pt" and rows[0]["miou"] == "" and rows[1]["miou"] != ""


def test_strict_exits_3_when_a_hygiene_check_fails_and_autoattack_reports_progress(tiny_data, tmp_path):
    (tmp_path / "constant.py").write_text(CONSTANT)
    model = f"{tmp_path / 'constant.py'}:build"
    common = ["attack", "--model", model, "--data", tiny_data, "--image-size", 32, "--split", "train",
              "--out", tmp_path / "a.csv"]
    strict = run_cli(*common, "--suite", "pgd", "--steps", 1, "--strict")
    assert strict.code == 3, strict.output
    assert strict.err.strip().splitlines()[-1].startswith("error: --strict: hygiene check(s) failed: input-dependence")
    assert len(list(csv.DictReader((tmp_path / "a.csv").open()))) == 1  # the results are written all the same
    lenient = run_cli(*common, "--suite", "pgd", "--steps", 1)
    assert lenient.code == 0 and "input-dependence" in lenient.out  # the checklist is a result: stdout
    refused = run_cli(*common, "--suite", "pgd", "--strict", "--no-hygiene")
    assert refused.code == 2 and "--strict" in refused.err

    torch.manual_seed(0)
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 5))
    torch.jit.save(torch.jit.script(linear), tmp_path / "linear.pt")
    aa = run_cli("attack", "--model", tmp_path / "linear.pt", "--data", tiny_data, "--image-size", 32, "--split",
                 "train", "--suite", "autoattack", "--eps", "1/255", "--batch-size", 4, "--no-hygiene", "--out",
                 tmp_path / "aa.csv")
    assert aa.code == 0, aa.output
    for attack in ("apgd-ce", "apgd-t", "fab-t", "square"):
        if f"AutoAttack {attack}:" in aa.err:  # an attack runs while some sample is robust
            assert re.search(rf"^{STAMP} AutoAttack {attack} 1/\d+ .* ETA .* \| \d+/\d+ still robust$", aa.err, re.M)
    assert "AutoAttack apgd-ce:" in aa.err, aa.err


def test_a_model_given_images_larger_than_the_datasets_says_so_and_one_that_fails_is_refused(tiny_data, tmp_path):
    (tmp_path / "flat.py").write_text("import torch\n\n\ndef build():\n    return torch.nn.Sequential("
                                      "torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 5))\n")
    model = f"{tmp_path / 'flat.py'}:build"
    failed = run_cli("evaluate", "--model", model, "--data", tiny_data, "--out", tmp_path / "e.csv")
    assert failed.code == 2 and not (tmp_path / "e.csv").exists()
    assert failed.err.splitlines()[0].startswith("note: --image-size 224 upsamples the test images of ")
    assert "(their shorter side is about 32 px); the model sees them 7.0× enlarged (224: the default" in failed.err
    assert failed.err.splitlines()[-1].startswith(f"error: --model {model}: fails on 2 images of 3×224×224 "
                                                  "(RuntimeError: mat1 and mat2 shapes cannot be multiplied")
    at_size = run_cli("evaluate", "--model", model, "--data", tiny_data, "--image-size", 32, "--out", tmp_path / "e.csv")
    assert at_size.code == 0 and "upsamples" not in at_size.err, at_size.output


def test_verbose_after_the_command_adds_the_traceback_to_an_error(tmp_path):
    plain = run_cli("info", tmp_path / "nosuch")
    verbose = run_cli("info", tmp_path / "nosuch", "-v")
    assert plain.code == verbose.code == 2 and plain.err.count("\n") == 1
    assert "Traceback (most recent call last)" in verbose.err and "read_dataset_info" not in plain.err
    assert verbose.err.splitlines()[-1] == plain.err.strip()
