"""Benchmarks that repeat the demo: its recipe as the quickstart has it, and a tiny run of the Table 1 benchmark."""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import demo_recipe  # noqa: E402
import table1_synthetic  # noqa: E402


def quickstart_commands() -> tuple[dict[str, list[str]], list[list[str]]]:
    """The quickstart's bash arrays (name → words) and its partcli commands (words, continuations joined)."""
    text = (ROOT / "examples" / "quickstart.sh").read_text()
    arrays = {name: shlex.split(body) for name, body in re.findall(r"^(\w+)=\((.*?)\)", text, re.S | re.M)}
    lines = text.replace("\\\n", " ").splitlines()
    commands = [shlex.split(line.split("#")[0].replace("> /dev/null", "")) for line in lines
                if line.strip().startswith("partcli")]
    return arrays, commands


def between(words: list[str], start: str, stop: str) -> list[str]:
    """The words after option ``start`` and its value, up to ``stop``."""
    i = words.index(start) + 2
    return words[i:words.index(stop)]


def without_seed(words: list[str]) -> list[str]:
    i = words.index("--seed")
    return words[:i] + words[i + 2:]


def test_demo_recipe_is_the_quickstarts():
    arrays, commands = quickstart_commands()
    assert without_seed(arrays["COMMON"]) == demo_recipe.COMMON
    assert arrays["CLEAN"] == demo_recipe.CLEAN
    assert arrays["PGD"] == demo_recipe.PGD
    prepare = next(c for c in commands if c[1] == "prepare")
    assert without_seed(between(prepare, "--out", "--overwrite")) == demo_recipe.DATA
    for command, own, after in (("pretrain", demo_recipe.CLEAN_EPOCHS, ("${CLEAN[@]}", "--out")),
                                ("train", demo_recipe.ADV_EPOCHS, ("${PGD[@]}", "--init"))):
        runs = [c for c in commands if c[1] == command]
        assert {c[c.index("--arch") + 1]: c[c.index("${COMMON[@]}") - 2:c.index("${COMMON[@]}")] for c in runs} == {
            "bbox": ["--arch", "bbox"], "resnet": ["--arch", "resnet"]}  # COMMON first: the model's own options win
        assert {c[c.index("--arch") + 1]: c[c.index(after[0]) + 1:c.index(after[1])] for c in runs} == own
    attack = next(c for c in commands if "attack" in c)
    assert between(attack, "--data", "--out") == demo_recipe.PGD20


@pytest.fixture(scope="module")
def smoke(module_tmp):
    out = module_tmp / "t1"
    argv = ["--seeds", "0", "--beta", "2", "--out", str(out), "--smoke"]
    return out, argv


@pytest.mark.slow  # about 35 s on 2 cores: six trainings, six attacks, two evaluations
def test_table1_smoke_run_has_every_row_and_column_and_resumes(smoke, capsys, monkeypatch):
    out, argv = smoke
    table1_synthetic.main(argv)
    printed = capsys.readouterr().out
    per_seed = printed.split("\n\n")[0]
    for header in ("seed", "training", "model", "clean acc", "AutoAttack acc", "mIoU"):
        assert header in per_seed.splitlines()[1]
    assert len(re.findall(r"^\s*0\s+(pgd|trades β=2)\s+(resnet|bbox)\b", per_seed, re.M)) == 4
    assert "mean ± 95 % CI over seeds 0" in printed and "PGD training, part model vs baseline" in printed
    assert re.search(r"trades β=2\s+trades β=2", printed)  # the matched pair (one β: itself)
    attacks = pd.read_csv(out / "results" / "attacks.csv")
    assert (attacks["attack"] == "pgd").sum() == 4 and set(attacks["n"]) == {10}  # smoke: PGD-2 for AutoAttack
    evaluate = pd.read_csv(out / "results" / "evaluate.csv")
    assert evaluate.set_index("checkpoint")["miou"].notna().sum() == 2  # the part models'
    assert (out / "seed0" / "runs" / "bbox-trades-beta2" / "checkpoints" / "best.pt").exists()

    calls = []
    monkeypatch.setattr(table1_synthetic, "partcli", lambda *a: calls.append(a))
    table1_synthetic.main(argv)
    assert calls == [] and capsys.readouterr().out == printed  # finished: nothing re-run, the same tables
