"""One definition per option (issue 12): --help shows every real default, choices are Enums, --config files are
held to the same rules and shown in --help, --version; console output never reads user text as markup."""
from __future__ import annotations

import dataclasses
import re
import sys

import pytest
import typer
import yaml
from typer.testing import CliRunner

from partcli.attacks.config import AttackConfig, Strategy
from helpers import run_cli
from partcli.cli import app
from partcli.options import ADVERSARY, PANELS, SEARCH, SHIFTS, SUMMARY, flag_name, spec_of
from partcli.pseudolabel.config import PseudoLabelConfig
from partcli.train.config import TRAIN_ONLY, Arch, TrainConfig
from partcli.version import __version__

runner = CliRunner()
WIDE = {"COLUMNS": "300", "TERM": "dumb"}


def commands(group, path: tuple[str, ...] = ()) -> list:
    """Every leaf command of the CLI, with its path (prepare's subcommands included)."""
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (Typer vendors click: no isinstance on click's own classes)
            found += commands(command, (*path, name))
        else:
            found.append(((*path, name), command))
    return found


ALL_COMMANDS = commands(typer.main.get_command(app))


def help_rows(text: str) -> dict[str, str]:
    """The help text of each option row in Typer's Rich help: option name -> its (joined) text."""
    rows: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        cells = line.strip("│ ").strip()
        name = re.match(r"^(?:\*\s+)?(--[a-z0-9-]+)", cells)
        if name:
            current = name.group(1)
            rows[current] = cells
        elif current and line.startswith("│"):
            rows[current] += " " + cells
        else:
            current = None
    return rows


def test_the_cli_has_the_commands_the_design_names():
    names = {" ".join(path) for path, _ in ALL_COMMANDS}
    assert {"prepare synthetic", "prepare part-imagenet", "prepare cityscapes", "prepare pascal-part", "pretrain",
            "train", "pseudolabel", "evaluate", "attack", "info"} <= names


@pytest.mark.parametrize("path, command", ALL_COMMANDS, ids=[" ".join(p) for p, _ in ALL_COMMANDS])
def test_help_shows_every_default(path, command):
    result = runner.invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    rows = help_rows(result.output)
    for param in command.params:
        if not isinstance(param, typer.core.TyperOption) or param.name == "help":
            continue
        if param.is_flag and not param.secondary_opts and param.default is False:
            continue  # an on-switch (--resume, --overwrite, --strict): off unless given, nothing to show
        row = rows[param.opts[0]]
        if param.default is None and not isinstance(param.show_default, str):
            assert "[default:" not in row, row  # no default (a required file, --pretrained): nothing claimed
            continue
        assert "[default:" in row, f"{' '.join(path)} {param.opts[0]} shows no default: {row}"
        shown = param.show_default if isinstance(param.show_default, str) else param.default
        if isinstance(shown, (list, tuple)):
            shown = ", ".join(str(getattr(v, "value", v)) for v in shown)
        elif param.is_flag and param.secondary_opts:
            shown = (param.opts if param.default else param.secondary_opts)[0].lstrip("-")
        assert f"{getattr(shown, 'value', shown)}" in row.split("[default:")[1], row


def test_training_help_has_the_panels_and_every_option_field():
    output = runner.invoke(app, ["train", "--help"], env=WIDE).output
    panels = [panel for panel in PANELS if panel not in (SHIFTS, SEARCH, SUMMARY)]  # those of other commands
    positions = [output.index(f"─ {panel} ─") for panel in panels]
    assert positions == sorted(positions)
    rows = help_rows(output)
    fields = [f for f in dataclasses.fields(TrainConfig) if spec_of(f) and spec_of(f).cli]
    for field in fields:
        flag = (spec_of(field).flags or flag_name(field.name)).split("/")[0]
        assert flag in rows, flag
    assert "--replanned" not in rows  # a recorded setting, not an option
    pretrain = help_rows(runner.invoke(app, ["pretrain", "--help"], env=WIDE).output)
    clean_only = {flag_name(f.name) for f in fields if spec_of(f).panel == ADVERSARY or f.name in TRAIN_ONLY}
    assert clean_only and not clean_only & set(pretrain)
    assert set(rows) - clean_only == set(pretrain)  # the same definitions otherwise
    assert "[default: 8/255]" in rows["--eps"] and "[default: 50]" in rows["--epochs"]


def test_every_config_field_is_an_option_of_its_command():
    for command, cls in (("pseudolabel", PseudoLabelConfig), ("attack", AttackConfig)):
        rows = help_rows(runner.invoke(app, [command, "--help"], env=WIDE).output)
        for field in dataclasses.fields(cls):
            if spec_of(field).cli:
                assert (spec_of(field).flags or flag_name(field.name)).split("/")[0] in rows, (command, field.name)


def test_choices_agree_with_what_the_code_builds():
    from partcli.attacks.seg_attacks import STRATEGIES
    from partcli.models.registry import ARCHS

    assert tuple(a.value for a in Arch) == ARCHS
    assert tuple(s.value for s in Strategy) == STRATEGIES


def test_config_file_values_show_as_defaults_in_help(tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump({"epochs": 7, "eps": "4/255", "arch": "pixel", "workers": 3}))
    rows = help_rows(runner.invoke(app, ["train", "--config", str(config), "--help"], env=WIDE).output)
    assert "[default: 7]" in rows["--epochs"] and "[default: 4/255]" in rows["--eps"]
    assert "[default: pixel]" in rows["--arch"] and "[default: 3]" in rows["--workers"]
    assert "[default: 128]" in rows["--batch-size"]  # what the file leaves alone keeps its own default


def test_config_file_choice_values_are_checked(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("arch: nope\n")
    result = run_cli("pretrain", "--config", config, "--out", tmp_path / "r")
    err = result.err
    assert result.code == 2 and err.count("\n") == 1
    assert f"--config {config}: arch 'nope': expected one of resnet, downsampled, bbox" in err
    assert not (tmp_path / "r").exists()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"partcli {__version__}"


# ------------------------------------------------------------------------------ user text is never markup
ODD = "a[b]c[/b][bold]d"


def test_paths_with_brackets_are_printed_as_they_are(tmp_path):
    missing = tmp_path / "runs" / ODD
    result = run_cli("pretrain", "--data", missing, "--out", tmp_path / "out")
    assert result.code == 2 and str(missing) in result.output  # the error message

    data = tmp_path / ODD
    result = run_cli("prepare", "synthetic", "--out", data, "--n", 40, "--image-size", 16)
    assert result.code == 0 and f"wrote {data}:" in result.output  # a result line

    result = run_cli("info", data)  # a table title
    assert result.code == 0 and ODD in result.output.replace("\n", "").replace("│", "").replace(" ", "")


def test_info_and_warning_lines_print_user_text_as_it_is(capsys):
    from partcli.progress import info, is_quiet, set_quiet, warn

    quiet = is_quiet()
    set_quiet(False)
    try:
        info(f"resuming runs/{ODD}")
        warn(f"runs/{ODD} is missing")
    finally:
        set_quiet(quiet)
    err = capsys.readouterr().err.splitlines()
    assert err == [f"resuming runs/{ODD}", f"warning: runs/{ODD} is missing"]


def test_the_cli_starts_without_importing_torch():
    """The option definitions are read at start-up; `--help` and `--version` need no torch (seconds)."""
    import subprocess

    code = "import sys, partcli.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


@pytest.mark.parametrize("module", ["partcli.train.config", "partcli.attacks.config", "partcli.evaluate.config",
                                    "partcli.robustness.config", "partcli.mask_views.config", "partcli.report.config",
                                    "partcli.pseudolabel.config", "partcli.data.prepare_config",
                                    "partcli.interop.import_config", "partcli.sweep.options", "partcli.options",
                                    "partcli.config"])
def test_option_declarations_do_not_import_typer(module):
    """Only the command line knows Typer: a library user importing a configuration does not load it."""
    import subprocess

    code = f"import sys, {module}; print('typer' in sys.modules, 'click' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False False"


def test_the_hygiene_checklist_shows_attack_names_with_brackets(capsys):
    from partcli.attacks.hygiene import Check, format_checklist
    from partcli.progress import console

    console.print(format_checklist([Check("large-eps", "ok", "accuracy 0.0% (autoattack[apgd-ce,fab,square])")]))
    assert "(autoattack[apgd-ce,fab,square])" in capsys.readouterr().err
