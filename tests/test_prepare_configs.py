"""`prepare ...` and `import adv-part-model` read their options from configuration dataclasses: a `--config` file
sets them, the command line wins over it, and a bad value (file or command line) is one line naming the option."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from bad_input_fixtures import assert_user_error
from helpers import run_cli
from partcli.data.contract import read_dataset_info


def write_config(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def total(out: Path) -> int:
    return sum(sum(c.values()) for c in read_dataset_info(out).counts.values())


def test_config_file_sets_prepare_synthetic_options_and_the_command_line_wins(tmp_path):
    config = write_config(tmp_path / "synthetic.yaml", {"n": 50, "image_size": 16, "seed": 3})
    out = tmp_path / "ds"
    result = run_cli("prepare", "synthetic", "--config", config, "--out", out, "--image-size", 24)
    assert result.code == 0, result.err
    source = read_dataset_info(out).source
    assert (source["n"], source["image_size"], source["seed"]) == (50, 24, 3)  # n, seed: file; size: command line
    assert total(out) == 50
    image = next((out / "images").rglob("*.png"))
    assert Image.open(image).size == (24, 24)


@pytest.mark.parametrize("values, names", [
    ({"seed": -1}, ["--seed -1", "[0, 4294967295]"]),
    ({"image_size": 4096}, ["--image-size 4096", "2048"]),
    ({"n": "many"}, ["n: expected an int", "'many'"]),
    ({"overwrite": "yes please"}, ["overwrite: expected a bool"]),
    ({"n_vall": 10}, ["unknown key(s) n_vall"]),
], ids=["seed-range", "image-size-range", "n-type", "overwrite-type", "unknown-key"])
def test_a_bad_value_in_a_config_file_is_refused_naming_the_option(tmp_path, values, names):
    config = write_config(tmp_path / "bad.yaml", {"n": 40, "image_size": 16, **values})
    out = tmp_path / "ds"
    assert_user_error(run_cli("prepare", "synthetic", "--config", config, "--out", out), *names)
    assert not out.exists() and not list(tmp_path.glob(".ds.*"))


@pytest.mark.parametrize("command, values, names", [
    ("cityscapes", {"workers": 0}, ["--workers 0", "at least 1"]),
    ("cityscapes", {"min_area": -5}, ["--min-area -5"]),
    ("cityscapes", {"pad": float("nan")}, ["pad", "finite"]),
    ("cityscapes", {"protocol": "largest-first"}, ["protocol 'largest-first'", "authors, text"]),
    ("part-imagenet", {"protocol": "text"}, ["protocol 'text'", "authors, largest-first"]),
    ("pascal-part", {"strict": "no"}, ["strict: expected a bool"]),
], ids=["workers", "min-area", "pad-nan", "cityscapes-protocol", "part-imagenet-protocol", "pascal-part-strict"])
def test_release_preparers_check_their_options_before_reading_the_release(tmp_path, command, values, names):
    """The declared choices and ranges are checked first: the (missing) --src is not even looked at."""
    config = write_config(tmp_path / "bad.yaml", values)
    out = tmp_path / "out"
    assert_user_error(run_cli("prepare", command, "--config", config, "--src", tmp_path / "nosuch", "--out", out),
                      *names)
    assert not out.exists()


@pytest.mark.parametrize("args, names", [
    (["prepare", "synthetic", "--n", 40], ["--out is required"]),
    (["prepare", "pascal-part", "--out", "OUT"], ["--src is required"]),
    (["prepare", "cityscapes", "--src", "OUT", "--out", "OUT", "--workers", 0], ["--workers 0"]),
    (["import", "adv-part-model", "model.pt"], ["--out is required"]),
])
def test_missing_or_bad_options_on_the_command_line(tmp_path, args, names):
    out = tmp_path / "out"
    assert_user_error(run_cli(*[out if a == "OUT" else a for a in args]), *names)
    assert not out.exists()


def test_import_reads_its_options_from_a_config_file(tmp_path):
    config = write_config(tmp_path / "import.yaml", {"out": str(tmp_path / "model.pt"), "dataset": "imagenet"})
    result = run_cli("import", "adv-part-model", tmp_path / "theirs.pt", "--config", config)
    assert_user_error(result, "dataset 'imagenet'", "part-imagenet, cityscapes, pascal-part")
    assert not (tmp_path / "model.pt").exists()
    config = write_config(tmp_path / "import.yaml", {"out": str(tmp_path / "model.pt")})
    result = run_cli("import", "adv-part-model", tmp_path / "theirs.pt", "--config", config)
    assert_user_error(result, str(tmp_path / "theirs.pt"))  # past the options: the missing file is named
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize("module", ["partcli.data.prepare_config", "partcli.interop.import_config"])
def test_prepare_and_import_option_declarations_import_neither_typer_nor_torch(module):
    code = f"import sys, {module}; print(*('typer' in sys.modules, 'click' in sys.modules, 'torch' in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False False False"
