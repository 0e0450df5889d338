"""Any model, not only partcli's checkpoints: ``--model FILE.py:FUNCTION``, torch.export and TorchScript files,
``partcli.attack`` on tensors, and ``--json`` results."""
from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest
import torch

import partcli
from helpers import run_cli
from partcli.attacks.outcomes import read_outcomes
from partcli.checkpoint import save_checkpoint
from partcli.errors import PartcliError
from partcli.evaluate.evaluate import evaluate_checkpoint
from partcli.models.registry import ModelConfig, build_model
from partcli.models.sources import open_model

PGD = dict(suite="pgd", n=8, steps=3, restarts=1, step_size=2 / 255, hygiene=False, device="cpu")


@pytest.fixture(scope="module")
def baseline(module_tmp, synthetic_data) -> Path:
    """A (random) resnet18 baseline checkpoint for the synthetic dataset's 5 classes, working at 32 px."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch="resnet", backbone="resnet18", num_classes=5)
    model = build_model(cfg).train()
    with torch.no_grad():  # BatchNorm statistics of real-looking inputs: predictions that differ between images
        for _ in range(5):
            model(torch.rand(32, 3, 32, 32))
    path = module_tmp / "baseline.pt"
    save_checkpoint(path, {"config": {"model": cfg.to_dict(), "dataset": {"name": "synthetic", "image_size": 32}},
                           "model": model.state_dict()})
    return path


@pytest.fixture(scope="module")
def model_files(module_tmp, baseline) -> dict[str, str]:
    """The baseline's weights as a Python builder, a torch.export program and a TorchScript file."""
    py = module_tmp / "my_defense.py"
    py.write_text(f"import partcli\n\n\ndef build():\n    return partcli.load_model({str(baseline)!r})\n")
    net = partcli.load_model(baseline)
    x = torch.rand(2, 3, 32, 32)
    program = torch.export.export(net, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(program, module_tmp / "model.pt2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(net, x).save(str(module_tmp / "model.ts"))
    return {"python": f"{py}:build", "export": str(module_tmp / "model.pt2"), "torchscript": str(module_tmp / "model.ts")}


@pytest.mark.parametrize("kind", ["python", "export", "torchscript"])
def test_any_model_gives_the_checkpoints_row_and_outcomes(kind, baseline, model_files, synthetic_data, tmp_path):
    mine = partcli.run_attack_suite(baseline, synthetic_data, None, tmp_path / "ckpt.csv", **PGD)
    theirs = partcli.run_attack_suite(None, synthetic_data, None, tmp_path / "model.csv", model=model_files[kind],
                                      image_size=32, **PGD)
    for a, b in zip(mine.rows, theirs.rows, strict=True):
        assert (a["attack"], a["n"], a["clean_acc"], a["adv_acc"]) == (b["attack"], b["n"], b["clean_acc"], b["adv_acc"])
    outcomes = read_outcomes(mine.samples_path)
    assert outcomes.robust == read_outcomes(theirs.samples_path).robust
    assert 0 < sum(outcomes.clean_correct) < len(outcomes.clean_correct)  # a model that tells images apart
    row = next(csv.DictReader((tmp_path / "model.csv").open()))
    assert row["checkpoint"] == model_files[kind]  # the CSV names the model as it was given


def test_a_part_model_from_python_keeps_its_segmenter(bbox_checkpoint, synthetic_data, tmp_path):
    py = tmp_path / "part.py"
    py.write_text(f"import partcli\n\n\ndef build():\n    return partcli.load_model({str(bbox_checkpoint)!r})\n")
    from_ckpt = evaluate_checkpoint(bbox_checkpoint, synthetic_data, "val", device="cpu", workers=0)
    from_py = evaluate_checkpoint(None, synthetic_data, "val", device="cpu", workers=0, model=f"{py}:build",
                                  image_size=32)
    assert from_py.pixel_acc is not None and from_py.pixel_acc == pytest.approx(from_ckpt.pixel_acc)
    assert from_py.clean_acc == pytest.approx(from_ckpt.clean_acc)


def test_partcli_attack_on_tensors():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2)).eval()  # margins ~0.3
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = net(x).argmax(1)  # every sample clean-correct
    result = partcli.attack(net, x, y, suite="pgd", eps=16 / 255, steps=5, restarts=1, hygiene=False)
    (row,) = result.rows
    assert row["clean_acc"] == 1.0 and row["adv_acc"] < 1.0  # the attack works on a random network
    with pytest.raises(PartcliError, match=r"\[0, 1\]"):
        partcli.attack(net, x * 2, y, suite="pgd")


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("source, expected", [
    ("nosuch.py:build", "not found"),
    ("{d}/nofn.py:build", "defines no function build"),
    ("{d}/raises.py:build", "build() raised ValueError: no weights here"),
    ("{d}/notmodule.py:build", "returned int, not a torch.nn.Module"),
    ("{d}/syntax.py:build", "importing"),
    ("{d}/model.py", "name the function"),
    ("{d}/notes.txt", "not a model partcli can load"),
])
def test_bad_models_are_refused_in_one_line(tmp_path, source, expected):
    write(tmp_path / "nofn.py", "x = 1\n")
    write(tmp_path / "raises.py", "def build():\n    raise ValueError('no weights here')\n")
    write(tmp_path / "notmodule.py", "def build():\n    return 3\n")
    write(tmp_path / "syntax.py", "def build(:\n")
    write(tmp_path / "notes.txt", "hello")
    with pytest.raises(PartcliError, match=None) as err:
        open_model(model=source.format(d=tmp_path))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_model_of_the_wrong_shape_is_refused(tmp_path, synthetic_data):
    py = write(tmp_path / "three.py", "import torch\n\n\ndef build():\n    return torch.nn.Sequential("
               "torch.nn.Flatten(), torch.nn.LazyLinear(3))\n")
    result = run_cli("evaluate", "--model", f"{py}:build", "--data", synthetic_data, "--image-size", 32,
                     "--out", tmp_path / "r.csv")
    assert result.code == 2 and "expected 2×5 logits (the dataset has 5 classes)" in result.err
    assert not (tmp_path / "r.csv").exists()


class Marker:
    """Unpickling this would create a file: the loader must refuse it without running it."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"
    bad = tmp_path / "model.pt"
    torch.save({"model": Marker(str(marker))}, bad)
    with pytest.raises(PartcliError):
        open_model(model=str(bad))
    assert not marker.exists()


def test_exactly_one_of_ckpt_and_model(baseline, model_files):
    with pytest.raises(PartcliError, match="one of them"):
        open_model(baseline, model_files["python"])
    with pytest.raises(PartcliError, match="one of them"):
        open_model()


def test_json_on_stdout_and_beside_the_csv(model_files, synthetic_data, tmp_path):
    out = tmp_path / "attacks.csv"
    result = run_cli("attack", "--model", model_files["python"], "--data", synthetic_data, "--image-size", 32,
                     "--suite", "pgd", "--n", 8, "--steps", 2, "--restarts", 1, "--no-hygiene", "--device", "cpu",
                     "--json", "--out", out)
    assert result.code == 0, result.output
    (record,) = [json.loads(line) for line in result.out.splitlines() if line.startswith("{")]
    row = next(csv.DictReader(out.open()))
    assert record["checkpoint"] == row["checkpoint"] and record["threat_model"] == "Linf"
    assert record["robust_acc"] == pytest.approx(float(row["adv_acc"]), abs=1e-6)
    assert record["clean_acc"] == pytest.approx(float(row["clean_acc"]), abs=1e-6)
    (saved,) = json.loads((tmp_path / "attacks.pgd.1.json").read_text())
    assert saved == record
