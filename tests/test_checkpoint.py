"""Checkpoints (docs/formats.md): versioned, atomic, ``weights_only``-loadable; anything else refused in one line."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from partcli.checkpoint import (CHECKPOINT_VERSION, Checkpoint, DatasetDescription, load_checkpoint, load_model,
                                model_from_checkpoint, save_checkpoint)
from partcli.errors import PartcliError
from partcli.models.registry import ModelConfig, build_model
from partcli.version import __version__

CFG = ModelConfig(arch="bbox", backbone="resnet18", num_classes=2, num_parts=3, part_to_class=[0, 0, 1])


@pytest.fixture(scope="module")
def saved(module_tmp) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model(CFG).eval()
    path = module_tmp / "sub" / "model.pt"
    save_checkpoint(path, {"config": {"model": CFG.to_dict(), "dataset": {"image_size": 32}}, "model": model.state_dict(),
                           "epoch": 3, "best_metric": 0.5, "rng": {"torch": torch.get_rng_state()}})
    return path, model


def test_checkpoint_is_versioned_and_weights_only_loadable(saved):
    path, model = saved
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["format_version"] == CHECKPOINT_VERSION and raw["partcli_version"] == __version__
    assert raw["epoch"] == 3 and raw["config"]["model"]["arch"] == "bbox"
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # the temporary file was renamed away
    state = load_checkpoint(path)
    assert state["model"].keys() == model.state_dict().keys()


def test_load_model_rebuilds_an_eval_mode_model_with_the_same_outputs(saved):
    path, model = saved
    loaded = load_model(path)
    assert not loaded.training
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)
    assert loaded(x).shape == (2, 2)
    rebuilt = model_from_checkpoint(Checkpoint.load(path))
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(), model.state_dict().values()))


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": {"w": torch.zeros(1)}})
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint(path, {"model": {"w": torch.ones(1)}, "bad": lambda: None})  # not picklable
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.pt"]


def _write(path: Path, content) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    return path


@pytest.mark.parametrize("name, content, expected", [
    ("random.pt", bytes(range(256)) * 4, "not a partcli checkpoint"),
    ("text.pt", b"hello, this is not a checkpoint\n", "not a partcli checkpoint"),
    ("empty.pt", b"", "not a partcli checkpoint"),
    ("plain.pt", {"weights": torch.zeros(2)}, "not a partcli checkpoint"),
    ("tensor.pt", torch.zeros(2), "not a partcli checkpoint"),
    ("noconfig.pt", {"format_version": CHECKPOINT_VERSION, "model": {}}, "not a partcli checkpoint"),
    ("future.pt", {"format_version": CHECKPOINT_VERSION + 1, "model": {}, "config": {"model": {}}},
     f"format_version {CHECKPOINT_VERSION + 1} is unknown"),
])
def test_not_a_partcli_checkpoint(tmp_path, name, content, expected):
    path = _write(tmp_path / name, content)
    with pytest.raises(PartcliError, match=expected) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_random_bytes_never_escape_as_other_errors(tmp_path):
    """Whatever the bytes, the loader answers with a PartcliError (torch.load raises many types)."""
    gen = torch.Generator().manual_seed(0)
    path = tmp_path / "fuzz.pt"
    for i in range(40):
        data = torch.randint(0, 256, (int(torch.randint(1, 200, (1,), generator=gen)),), generator=gen)
        path.write_bytes((b"\x80\x02" if i % 2 else b"") + bytes(data.tolist()))
        with pytest.raises(PartcliError):
            load_checkpoint(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(PartcliError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(PartcliError, match="folder"):
        load_checkpoint(tmp_path)


def test_format_1_baselines_load_and_format_1_part_models_are_refused(tmp_path):
    """Format 2 changed the part-model heads (BatchNorm, the paper's layout); baselines are unchanged."""
    torch.manual_seed(0)
    rn_cfg = ModelConfig(arch="resnet", backbone="resnet18", num_classes=2)
    baseline = build_model(rn_cfg).eval()
    old_rn = _write(tmp_path / "rn.pt", {"format_version": 1, "config": {"model": rn_cfg.to_dict()},
                                          "model": baseline.state_dict()})
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_model(old_rn)(x), baseline(x))
    old_part = _write(tmp_path / "bbox.pt", {"format_version": 1, "config": {"model": CFG.to_dict()}, "model": {}})
    with pytest.raises(PartcliError, match="format-1 part model.*retrain"):
        load_checkpoint(old_part)


# ------------------------------------------------------------------------------------- the Checkpoint object
def test_checkpoint_object_round_trips_a_training_runs_file(bbox_checkpoint):
    """``from_state`` then ``to_state`` gives back the stored dict of a run's checkpoint, entry for entry."""
    raw = torch.load(bbox_checkpoint, map_location="cpu", weights_only=True)
    ckpt = Checkpoint.from_state(torch.load(bbox_checkpoint, map_location="cpu", weights_only=True), bbox_checkpoint)
    assert ckpt.format_version == CHECKPOINT_VERSION and ckpt.model_config.arch == "bbox"
    assert ckpt.dataset.name == "synthetic" and ckpt.dataset.label_kind == "part" and ckpt.epoch >= 1
    assert ckpt.optimizer is not None and ckpt.rng is not None and len(ckpt.metrics) == ckpt.epoch
    state = ckpt.to_state()
    assert state.keys() == raw.keys() and state["config"] == raw["config"]
    for key in raw:
        if key not in ("model", "optimizer", "rng"):  # tensors: compared below
            assert state[key] == raw[key], key
    assert all(torch.equal(state["model"][k], raw["model"][k]) for k in raw["model"])


def test_every_earlier_format_loads_through_checkpoint_with_its_upgrades(tmp_path):
    """Format 1: baselines load, part models are refused; format 2: bbox models keep their probability score."""
    rn_cfg = ModelConfig(arch="resnet", backbone="resnet18", num_classes=2)
    rn = _write(tmp_path / "rn.pt", {"format_version": 1, "config": {"model": rn_cfg.to_dict()},
                                     "model": build_model(rn_cfg).state_dict()})
    old_rn = Checkpoint.load(rn)
    assert old_rn.format_version == 1 and old_rn.model_config == rn_cfg and old_rn.dataset == DatasetDescription()
    assert old_rn.dataset.label_kind == "part" and old_rn.epoch is None and old_rn.train == {}
    model_from_checkpoint(old_rn)  # the weights fit
    part = _write(tmp_path / "bbox1.pt", {"format_version": 1, "config": {"model": CFG.to_dict()}, "model": {}})
    with pytest.raises(PartcliError, match="format-1 part model.*retrain"):
        Checkpoint.load(part)
    doc = {k: v for k, v in CFG.to_dict().items() if k != "bbox_score"}
    two = Checkpoint.load(_write(tmp_path / "bbox2.pt", {"format_version": 2, "model": {}, "config": {
        "model": doc, "train": {"arch": "bbox"}, "dataset": {"name": "d", "image_size": 32}}}))
    assert two.format_version == 2 and two.model_config.bbox_score == "prob" and two.train["bbox_score"] == "prob"
    assert two.dataset == DatasetDescription(name="d", image_size=32)
    assert two.to_state()["config"]["dataset"] == {"name": "d", "image_size": 32}


def test_checkpoint_from_the_future_or_not_a_checkpoint_is_refused_in_one_line(tmp_path):
    future = {"format_version": CHECKPOINT_VERSION + 1, "model": {}, "config": {"model": {}}}
    with pytest.raises(PartcliError, match=f"new.pt: checkpoint format_version {CHECKPOINT_VERSION + 1} is unknown"
                                           ".*upgrade partcli"):
        Checkpoint.from_state(future, "new.pt")
    with pytest.raises(PartcliError, match="not a partcli checkpoint"):
        Checkpoint.from_state({"weights": torch.zeros(1)}, "x.pt")
