"""--help reads well at 100 columns (issue 24): no Python types as value labels, every choice option lists its
choices, flags show no label, options sit in panels, train says what --adv defaults to."""
from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from partcli.cli import app
from tests.test_options import ALL_COMMANDS

runner = CliRunner()
NARROW = {"COLUMNS": "100", "TERM": "dumb"}


def help_rows(text: str) -> dict[str, str]:
    """Option name -> its row's cells, joined over the row's lines (a row starts at the panel's left edge: a help
    text's line that starts with an option's name is no new row)."""
    rows: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        name = re.match(r"^│ (?:\*\s+|\s{0,3})(--[a-z0-9-]+)", line)
        if name:
            current = name.group(1)
            rows[current] = ""
        elif not line.startswith("│"):
            current = None
        if current:
            rows[current] += " " + line.strip("│ ")
    return rows


def narrow_help(path: tuple[str, ...]) -> str:
    result = runner.invoke(app, [*path, "--help"], env=NARROW)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path, command", ALL_COMMANDS, ids=[" ".join(p) for p, _ in ALL_COMMANDS])
def test_help_at_100_columns_labels_every_option_plainly(path, command):
    text = narrow_help(path)
    assert "<bool>" not in text and "list[" not in text and "<str>" not in text and "<int>" not in text
    assert "─ Options ─" not in text  # every option, --help included, sits in a named panel
    assert max(len(line) for line in text.splitlines()) <= 100
    rows = help_rows(text)
    for param in command.params:
        if not isinstance(param, typer.core.TyperOption):
            continue
        assert param.rich_help_panel, f"{' '.join(path)} {param.opts[0]} is in no panel"
        if param.type_descriptor.is_choice:  # its label a|b|c, wrapped over the row's lines
            row = rows[param.opts[0]]
            values = [c.value for c in param.type_descriptor.choices]
            labels = set(re.split(r"\s+|\||\[|\]|\.\.\.", row))
            assert f"{values[0]}|" in row and set(values) <= labels, f"{' '.join(path)} {param.opts[0]}: {row}"


def test_flags_show_no_label_and_values_show_their_kind():
    rows = help_rows(narrow_help(("train",)))
    assert re.search(r"--resume\s+Continue", rows["--resume"])
    assert re.search(r"--drop-background\s+Downsampled", rows["--drop-background"])
    assert " INT " in rows["--epochs"] and " FLOAT " in rows["--lr"] and " PATH " in rows["--out"]
    assert "[mlflow|tensorboard|" in rows["--logger"] and " wandb]... " in rows["--logger"]  # wrapped
    assert "[required]" in rows["--data"] and "[required]" in rows["--out"]
    robustness = help_rows(narrow_help(("robustness",)))
    assert "corruptions|" in robustness["--suite"] and "shape-texture|all" in robustness["--suite"]
    assert " TEXT... " in robustness["--corruption"] and " INT... " in robustness["--severity"]


def test_train_help_says_what_adv_defaults_to():
    text = narrow_help(("train",))
    description = " ".join(text.split("╭")[0].split())
    assert "--adv defaults to none" in description
    assert "[default: none]" in help_rows(text)["--adv"]


def test_choices_of_cli_options_agree_with_the_code():
    from partcli.interop.import_config import KnownDataset
    from partcli.interop.dataset_names import KNOWN_DATASETS
    from partcli.robustness.config import RobustnessSuite
    from partcli.robustness.suite import SUITES
    from partcli.mask_views import ATTACKS
    from partcli.mask_views.config import VisualAttack

    assert tuple(s.value for s in RobustnessSuite) == SUITES
    assert tuple(a.value for a in VisualAttack) == ATTACKS
    assert tuple(d.value for d in KnownDataset) == KNOWN_DATASETS


def test_paired_flags_stack_their_names_and_still_parse(tmp_path):
    text = narrow_help(("pretrain",))
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("│ --drop-background "))
    assert lines[first + 1].startswith("│ --keep-background ")  # the pair in one column, one above the other
    assert "[default: keep-background]" in help_rows(text)["--keep-background"]  # the row's next lines
    start = lines[first].index("Downsampled head")  # descriptions start before the middle of the panel
    assert start < 50, lines[first]
    # drawing the help left the options as they were: the negative flag still parses
    result = runner.invoke(app, ["attack", "--no-hygiene", "--data", str(tmp_path / "missing"), "--ckpt",
                                 str(tmp_path / "x.pt"), "--out", str(tmp_path / "a.csv")], env=NARROW)
    assert "No such option" not in result.output and result.exit_code != 0
