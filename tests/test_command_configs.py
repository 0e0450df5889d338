"""The option model of the measuring and summarising commands: a ``--config`` file per command, ranges declared on
the fields and checked by one function, option declarations that do not need Typer."""
from __future__ import annotations

import csv

import pytest

from bad_input_fixtures import assert_user_error, good, good_checkpoint  # noqa: F401 (fixtures)
from helpers import run_cli
from partcli.config import check_fields
from partcli.errors import PartcliError
from partcli.evaluate.config import EvaluateConfig
from partcli.options import OptionSpec, range_error
from partcli.report.config import ReportConfig
from partcli.train.config import TrainConfig
from partcli.mask_views.config import VisualizeConfig


@pytest.mark.parametrize("low, high, low_open, value, problem", [
    (1, None, False, 0, "must be at least 1"), (1, None, False, 1, None),
    (0, None, True, 0, "must be positive"), (0, None, True, 1e-9, None),
    (0, 1, True, 0, "must lie in (0, 1]"), (0, 1, True, 1.5, "must lie in (0, 1]"), (0, 1, True, 1, None),
    (0, 1, False, 0, None), (0, 1, False, -0.1, "must lie in [0, 1]"), (None, 4, False, 5, "must be at most 4"),
    (1, None, False, "auto", None),  # not a number: the field's parser checks it
])
def test_range_error_reads_the_declared_bounds(low, high, low_open, value, problem):
    spec = OptionSpec(help="", panel="Run", low=low, high=high, low_open=low_open)
    assert range_error(spec, value) == problem


@pytest.mark.parametrize("config, message", [
    (VisualizeConfig(steps=0), "--steps 0: must be at least 1"),
    (VisualizeConfig(eps=2.0), "--eps 2: must lie in (0, 1]"),
    (VisualizeConfig(seed=-1), "--seed -1: must lie in [0, 4294967295]"),
    (EvaluateConfig(batch_size=0), "--batch-size 0: must be at least 1"),
    (EvaluateConfig(split="nope"), "--split 'nope': expected one of train, val, test"),
    (ReportConfig(format="gif"), "--format 'gif': expected one of png, pdf, svg"),
    (ReportConfig(eps=float("nan")), "--eps nan: must be a finite number"),
    (TrainConfig(momentum=1.0), "--momentum 1: must lie in [0, 1)"),
    (TrainConfig(lr=0.0), "--lr 0: must be positive"),
])
def test_check_fields_refuses_what_a_field_declares_naming_the_option(config, message):
    with pytest.raises(PartcliError) as refused:
        check_fields(config)
    assert str(refused.value) == message
    check_fields(VisualizeConfig())  # the defaults pass


def test_a_config_file_sets_evaluate_options_and_the_command_line_wins(good, good_checkpoint, tmp_path):
    config = tmp_path / "evaluate.yaml"
    config.write_text("split: val\nbatch_size: 1\ndevice: cpu\n")
    out = tmp_path / "e.csv"
    for extra in ((), ("--split", "test")):
        result = run_cli("-q", "evaluate", "--ckpt", good_checkpoint, "--data", good, "--config", config,
                         "--out", out, *extra)
        assert result.code == 0, result.err
    rows = list(csv.DictReader(out.open()))
    assert [r["split"] for r in rows] == ["val", "test"]


@pytest.mark.parametrize("command, text, named", [
    ("visualize", "batch_size: 0\n", "--batch-size 0: must be at least 1"),
    ("visualize", "steps: many\n", "steps: expected an int"),
    ("evaluate", "colour: red\n", "unknown key(s) colour"),
    ("attack", "restarts: 0\n", "--restarts 0: must be at least 1"),
    ("robustness", "severity: 3\n", "severity: expected a list, got 3"),
    ("robustness", "severity: [2, high]\n", "severity: expected a list of int values, got 'high'"),
])
def test_a_bad_config_file_is_refused_before_any_work(command, text, named, good, good_checkpoint, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    out = tmp_path / "out.png" if command == "visualize" else tmp_path / "out.csv"
    assert_user_error(run_cli(command, "--ckpt", good_checkpoint, "--data", good, "--config", config, "--out", out),
                      named)
    assert not out.exists()


def test_report_and_compare_take_a_config_file(tmp_path):
    config = tmp_path / "report.yaml"
    config.write_text("split: nope\n")
    assert_user_error(run_cli("report", tmp_path, "--config", config, "--out", tmp_path / "r"), "split", "'nope'")
    config.write_text("metric: 3\n")
    assert_user_error(run_cli("compare", tmp_path / "x.csv", "--config", config), "metric", "expected a str")


def test_the_public_visualize_stays_the_function_once_its_package_is_imported():
    """``partcli.visualize`` names the function; its package has another name, so importing the package (as the CLI
    does for the option declarations) cannot replace the attribute with a module."""
    import subprocess
    import sys

    code = ("import partcli, partcli.mask_views.config\n"
            "first = partcli.visualize\nimport partcli.mask_views.draw\n"
            "print(callable(first), first is partcli.visualize, type(partcli.visualize).__name__)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split() == ["True", "True", "function"]


@pytest.mark.parametrize("option, value, message", [("--frac", 0, "--frac 0: must lie in (0, 1]"),
                                                    ("--image-size", 8, "--image-size 8: must lie in [16, 4096]")])
def test_pseudolabel_refuses_a_value_outside_its_fields_range_before_writing(option, value, message, good, tmp_path):
    out = tmp_path / "pseudo"
    assert_user_error(run_cli("pseudolabel", "--data", good, "--out", out, option, value), message)
    assert not out.exists() and not (tmp_path / "pseudo.segmenter").exists()
