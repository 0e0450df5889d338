"""``--pretrained``: ImageNet weights through torchvision's, timm's and smp's own loading paths and caches.

Nothing is downloaded: a weights file is placed where the real path looks (the torch hub cache under $TORCH_HOME,
the Hugging Face hub cache), and "offline" is the download function raising as it does without a network.
"""
from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from helpers import run_cli
from partcli.config import parse_pretrained
from partcli.errors import PartcliError
from partcli.models.registry import ModelConfig, build_model_with_weights

PART_CFG = ModelConfig(arch="bbox", backbone="resnet18", num_classes=2, num_parts=3, part_to_class=[0, 0, 1])
BASELINE_CFG = ModelConfig(arch="resnet", backbone="resnet18", num_classes=5)
TV_FILE = Path(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url).name  # resnet18-f37072fd.pth


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty $TORCH_HOME: torch.hub's cache is $TORCH_HOME/hub/checkpoints."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


@pytest.fixture
def no_network(monkeypatch):
    """torch.hub's download as it fails without a network; records the calls."""
    calls = []

    def fail(url, dst, *args, **kwargs):
        calls.append((url, dst))
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    return calls


def imagenet_like_resnet18() -> dict[str, torch.Tensor]:
    """A torchvision resnet18 state dict (1000 classes) standing for the ImageNet file."""
    torch.manual_seed(7)
    return torchvision.models.resnet18(num_classes=1000).state_dict()


def place_torchvision_file(torch_home: Path) -> dict[str, torch.Tensor]:
    state = imagenet_like_resnet18()
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(state, folder / TV_FILE)
    return state


def test_imagenet_loads_torchvisions_cached_file_into_the_segmenter_encoder(torch_home, no_network):
    state = place_torchvision_file(torch_home)
    model, loaded = build_model_with_weights(PART_CFG, "imagenet")
    encoder = model.segmenter.encoder.state_dict()
    assert set(encoder) == set(state) - {"fc.weight", "fc.bias"}
    assert all(torch.equal(encoder[k], state[k]) for k in encoder)
    assert no_network == []  # found in the cache: nothing fetched
    assert "IMAGENET1K_V1" in loaded.description and TV_FILE in loaded.description


def test_imagenet_loads_every_baseline_tensor_but_the_imagenet_classifier(torch_home, no_network):
    state = place_torchvision_file(torch_home)
    model, _ = build_model_with_weights(BASELINE_CFG, "imagenet")
    net = model.net.state_dict()
    assert all(torch.equal(net[k], state[k]) for k in net if not k.startswith("fc."))
    assert net["fc.weight"].shape == (5, 512)  # our 5 classes, not ImageNet's 1000


def test_imagenet_offline_fails_in_one_line_naming_the_file_and_the_folder(torch_home, no_network):
    with pytest.raises(PartcliError) as err:
        build_model_with_weights(PART_CFG, "imagenet")
    message = str(err.value)
    assert "\n" not in message and "--pretrained imagenet" in message
    assert TV_FILE in message and str(torch_home / "hub" / "checkpoints") in message
    assert no_network and no_network[0][0].endswith(TV_FILE)  # the real download path was tried
    assert not torch_home.exists()  # no empty cache folders left behind


def test_a_damaged_cached_file_is_refused_in_one_line(torch_home, no_network):
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / TV_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(PartcliError, match="not a readable PyTorch weights file"):
        build_model_with_weights(PART_CFG, "imagenet")


def place_hf_file(monkeypatch, tmp_path: Path, repo: str, state: dict[str, torch.Tensor]) -> None:
    """The Hugging Face hub cache layout (refs/main -> snapshots/<revision>/model.safetensors), offline."""
    import huggingface_hub.constants as hf
    from safetensors.torch import save_file

    cache = tmp_path / "hf"
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    folder = cache / f"models--{repo.replace('/', '--')}"
    revision = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    (folder / "snapshots" / revision).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "snapshots" / revision / "model.safetensors")


def test_timm_weights_load_from_the_hugging_face_cache_into_a_torchvision_resnet(tmp_path, monkeypatch):
    """timm's resnet18 shares torchvision's tensor names: the paper's baseline weights (timm) fit partcli's."""
    import timm

    torch.manual_seed(3)
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    place_hf_file(monkeypatch, tmp_path, "timm/resnet18.a1_in1k", state)
    model, loaded = build_model_with_weights(BASELINE_CFG, "timm:resnet18.a1_in1k")
    net = model.net.state_dict()
    assert all(torch.equal(net[k], state[k]) for k in net if not k.startswith("fc."))
    assert "timm resnet18.a1_in1k" in loaded.description
    default, _ = build_model_with_weights(BASELINE_CFG, "timm")  # timm's default tag of resnet18 is a1_in1k
    assert torch.equal(default.net.conv1.weight, state["conv1.weight"])


def test_timm_offline_fails_in_one_line_naming_what_to_fetch(tmp_path, monkeypatch):
    place_hf_file(monkeypatch, tmp_path, "timm/other", {})  # an empty offline cache
    with pytest.raises(PartcliError) as err:
        build_model_with_weights(ModelConfig(arch="resnet", backbone="resnet50", num_classes=5),
                                 "timm:resnet50.ram_in1k")
    message = str(err.value)
    assert "\n" not in message and "timm/resnet50.ram_in1k" in message
    assert "resnet50_ram-a26f946b.pth" in message and "TIMM_USE_OLD_CACHE=1" in message


def test_timm_weights_of_another_architecture_are_refused():
    with pytest.raises(PartcliError, match="weights of resnet50, but --backbone is resnet18"):
        build_model_with_weights(BASELINE_CFG, "timm:resnet50.ram_in1k")
    with pytest.raises(PartcliError, match="no pretrained weights named resnet18.nosuch"):
        build_model_with_weights(BASELINE_CFG, "timm:resnet18.nosuch")


def test_a_non_torchvision_encoder_uses_smps_weights_and_fails_offline_in_one_line(tmp_path, monkeypatch):
    place_hf_file(monkeypatch, tmp_path, "timm/other", {})
    cfg = ModelConfig(arch="bbox", backbone="mobilenet_v2", num_classes=2, num_parts=3, part_to_class=[0, 0, 1])
    with pytest.raises(PartcliError) as err:
        build_model_with_weights(cfg, "imagenet")
    assert "smp-hub/mobilenet_v2.imagenet" in str(err.value) and "\n" not in str(err.value)


def test_a_local_file_must_fit_the_backbone(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in imagenet_like_resnet18().items()}}, good)
    model, loaded = build_model_with_weights(PART_CFG, str(good))  # a checkpoint layout with a DDP prefix
    assert torch.equal(model.segmenter.encoder.conv1.weight, imagenet_like_resnet18()["conv1.weight"])
    assert str(good.resolve()) in loaded.description
    wrong = tmp_path / "wrong.pt"
    torch.save(torchvision.models.resnet50().state_dict(), wrong)  # another architecture: shapes differ
    with pytest.raises(PartcliError, match="do not fit the resnet18 segmenter encoder"):
        build_model_with_weights(PART_CFG, str(wrong))
    with pytest.raises(PartcliError, match="file not found"):
        build_model_with_weights(PART_CFG, str(tmp_path / "missing.pt"))


@pytest.mark.parametrize("value, expected", [(None, None), ("none", None), ("None", None), ("imagenet", "imagenet"),
                                             ("timm", "timm"), ("timm:resnet50.ram_in1k", "timm:resnet50.ram_in1k"),
                                             ("w.pt", "w.pt")])
def test_parse_pretrained(value, expected):
    assert parse_pretrained(value, "--pretrained") == expected


def test_parse_pretrained_refuses_an_empty_timm_name():
    with pytest.raises(PartcliError, match="after the colon"):
        parse_pretrained("timm:", "--pretrained")


def test_pretrain_cli_offline_is_one_line_exit_2_and_writes_nothing(synthetic_data, tmp_path, torch_home, no_network):
    out = tmp_path / "run"
    result = run_cli("pretrain", "--data", synthetic_data, "--out", out, "--arch", "bbox", "--image-size", 32,
                     "--epochs", 1, "--device", "cpu", "--pretrained", "imagenet")
    assert result.code == 2
    errors = [line for line in result.err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and TV_FILE in errors[0]
    assert not out.exists()


def test_pretrain_cli_says_which_weights_it_loaded(synthetic_data, tmp_path, torch_home, no_network):
    place_torchvision_file(torch_home)
    out = tmp_path / "run"
    result = run_cli("pretrain", "--data", synthetic_data, "--out", out, "--arch", "resnet", "--image-size", 32,
                     "--epochs", 1, "--batch-size", 16, "--device", "cpu", "--workers", 0, "--pretrained", "imagenet")
    assert result.code == 0, result.output
    assert "weights: torchvision resnet18 IMAGENET1K_V1" in result.err
    import yaml

    assert yaml.safe_load((out / "config.yaml").read_text())["pretrained"] == "imagenet"  # not made a path
