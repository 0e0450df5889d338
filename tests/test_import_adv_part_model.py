"""`partcli import adv-part-model`: the paper authors' checkpoints, built here in their on-disk format.

The authors' files are ``torch.save({"epoch", "state_dict", "optimizer", "scaler", "best_acc1", "args"})`` with
``args`` an ``argparse.Namespace`` and DataParallel's ``module.`` before every key. The tensors come from partcli
models with random weights and BatchNorm statistics, renamed into the authors' layouts by the tables below (the
authors' layer order, written out here independently of the importer). Reference logits are computed by hand from
the authors' tensors, layer by layer, as their forward pass runs.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
import torchvision

import partcli
from helpers import run_cli
from partcli.checkpoint import load_checkpoint, save_checkpoint
from partcli.errors import PartcliError
from partcli.interop.dataset_names import known_dataset
from partcli.interop.import_checkpoint import import_adv_part_model
from partcli.models.bbox import bbox_features
from partcli.models.registry import ModelConfig, build_model

C, K = 2, 9  # Cityscapes: human and vehicle, 9 parts
# The authors' head (nn.Sequential) index of each partcli head layer holding tensors.
POOLING_INDEX = {"conv.0": 1, "conv.1": 2, "fc.0": 5, "fc.1": 6, "fc.3": 8}  # pool conv bn relu flat fc bn relu fc
WBBOX_INDEX = {"mlp.1": 2, "mlp.2": 3, "mlp.4": 5, "mlp.5": 6}  # identity flat bn fc relu bn fc
# Where the authors keep the normaliser, the segmenter (or a baseline's network) and the head, per key layout.
LAYOUTS = {
    "2022": {"normalize": "module.segmenter.0.", "segmenter": "module.segmenter.1.", "head": "module.core_model.",
             "baseline_normalize": "module.0.", "net": "module.1."},
    "later": {"normalize": "module.", "segmenter": "module._model.segmenter.", "head": "module._model.core_model.",
              "baseline_normalize": "module.", "net": "module._model."},
    "later-pooling": {"normalize": "module.", "segmenter": "module._model._segmenter.",
                      "head": "module._model.core_model."},
}


def randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every BatchNorm random statistics and affine weights, so a misplaced one changes the logits."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=g) * 0.2 + 1)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


def part_model(arch: str, num_parts: int = K, num_classes: int = C, pool: int = 4, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomised(build_model(ModelConfig(arch=arch, backbone="resnet18", num_classes=num_classes,
                                              num_parts=num_parts, pool=pool)), seed)


def to_authors(model: torch.nn.Module, layout: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(the authors' state dict, authors' key -> partcli key) of a partcli model."""
    places = LAYOUTS[layout]
    state, where = {}, {}
    for key, tensor in model.state_dict().items():
        group, _, rest = key.partition(".")
        if group == "head":
            table = POOLING_INDEX if rest.startswith(("conv.", "fc.")) else WBBOX_INDEX
            layer = next(name for name in table if rest.startswith(name + "."))
            theirs = f"{places['head']}{table[layer]}.{rest[len(layer) + 1:]}"
        elif group == "normalize":
            theirs = places["normalize" if hasattr(model, "head") else "baseline_normalize"] + rest
        else:
            theirs = places[group] + rest
        state[theirs], where[theirs] = tensor.clone(), key
    return state, where


def authors_args(**changes) -> argparse.Namespace:
    values = dict(experiment="part-pooling-4-semi", dataset="cityscapes", num_classes=C, seg_labels=K + 1,
                  seg_backbone="resnet18", seg_arch="deeplabv3plus", arch="resnet50", adv_train="pgd",
                  epsilon=8 / 255, atk_steps=10, epochs=150, seed=0, pretrained=True, obj_det_arch=None)
    return argparse.Namespace(**{**values, **changes})


def save_authors(path: Path, state: dict, args: argparse.Namespace | None) -> Path:
    torch.save({"epoch": 150, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}, "scaler": {},
                "best_acc1": torch.tensor(71.5), "args": args}, path)
    return path


def theirs(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def reference_segmenter(state: dict, layout: str, x: torch.Tensor, num_parts: int = K) -> torch.Tensor:
    """The authors' normalisation and DeepLabv3+ (an smp model holding their tensors) on ``x``."""
    places = LAYOUTS[layout]
    segmenter = smp.DeepLabV3Plus(encoder_name="resnet18", encoder_weights=None, classes=num_parts + 1)
    segmenter.load_state_dict(theirs(state, places["segmenter"]))
    mean, std = state[places["normalize"] + "mean"], state[places["normalize"] + "std"]
    return segmenter.eval()((x - mean) / std)


def bn(h: torch.Tensor, head: dict, i: int) -> torch.Tensor:
    return F.batch_norm(h, head[f"{i}.running_mean"], head[f"{i}.running_var"], head[f"{i}.weight"],
                        head[f"{i}.bias"], training=False, eps=1e-5)


def reference_pooling(state: dict, layout: str, x: torch.Tensor, pool: int = 4) -> torch.Tensor:
    """Their downsampled model: softmax, pool, conv, BN, ReLU, flatten, linear, BN, ReLU, linear."""
    head = theirs(state, LAYOUTS[layout]["head"])
    masks = reference_segmenter(state, layout, x).softmax(1)
    h = F.relu(bn(F.conv2d(F.adaptive_avg_pool2d(masks, pool), head["1.weight"], head["1.bias"]), head, 2))
    h = F.relu(bn(F.linear(h.flatten(1), head["5.weight"], head["5.bias"]), head, 6))
    return F.linear(h, head["8.weight"], head["8.bias"])


def reference_wbbox(state: dict, layout: str, x: torch.Tensor) -> torch.Tensor:
    """Their bounding-box model: part features (the logit score variant), flatten, BN, linear, ReLU, BN, linear."""
    head = theirs(state, LAYOUTS[layout]["head"])
    features = bbox_features(reference_segmenter(state, layout, x), "logit").flatten(1)
    h = F.relu(F.linear(bn(features, head, 2), head["3.weight"], head["3.bias"]))
    return F.linear(bn(h, head, 5), head["6.weight"], head["6.bias"])


def assert_every_tensor_placed(out: Path, state: dict, where: dict) -> None:
    imported = load_checkpoint(out)["model"]
    assert len(imported) == len(state)
    for key, tensor in state.items():
        assert torch.equal(imported[where[key]], tensor), key


@pytest.fixture(scope="module")
def pooling_model():
    return part_model("downsampled", seed=1)


@pytest.fixture(scope="module")
def wbbox_model():
    return part_model("bbox", seed=2)


@pytest.fixture(scope="module")
def images():
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))


# ---------------------------------------------------------------------------------------------- exact imports
@pytest.mark.parametrize("layout", ["2022", "later-pooling", "later"])
def test_downsampled_model_is_placed_tensor_by_tensor_and_gives_the_authors_logits(tmp_path, pooling_model, images,
                                                                                   layout):
    state, where = to_authors(pooling_model, layout)
    src = save_authors(tmp_path / "part-pooling-4.pt", state, authors_args())
    result = import_adv_part_model(src, tmp_path / "out.pt")
    assert_every_tensor_placed(tmp_path / "out.pt", state, where)
    with torch.no_grad():
        diff = (partcli.load_model(tmp_path / "out.pt")(images) - reference_pooling(state, layout, images)).abs().max()
    assert diff < 1e-6
    assert (result.naming, result.recognised.arch, result.recognised.pool) == (layout.split("-")[0], "downsampled", 4)
    saved = load_checkpoint(tmp_path / "out.pt")
    assert saved["config"]["model"]["pool"] == 4 and not saved["config"]["model"]["drop_background"]
    assert saved["config"]["dataset"]["classes"] == ["human", "vehicle"]
    assert saved["config"]["dataset"]["parts"][0] == {"name": "torso", "class": "human"}
    assert saved["config"]["train"]["adv"] == "pgd" and saved["config"]["train"]["eps"] == pytest.approx(8 / 255)
    assert saved["epoch"] == 150 and saved["provenance"]["best_acc1"] == pytest.approx(71.5)
    assert saved["provenance"]["experiment"] == "part-pooling-4-semi"


@pytest.mark.parametrize("layout,experiment", [("later", "part-wbbox-norm_img-semi"),
                                               ("2022", "part-wbbox-norm_img-centroid-semi")])
def test_bbox_model_is_placed_tensor_by_tensor_and_gives_the_authors_logits(tmp_path, wbbox_model, images, layout,
                                                                            experiment):
    """``centroid`` only adds outputs of their forward pass when masks are returned: the logits are the same."""
    state, where = to_authors(wbbox_model, layout)
    src = save_authors(tmp_path / "part-wbbox.pt", state, authors_args(experiment=experiment))
    import_adv_part_model(src, tmp_path / "out.pt")
    assert_every_tensor_placed(tmp_path / "out.pt", state, where)
    with torch.no_grad():
        diff = (partcli.load_model(tmp_path / "out.pt")(images) - reference_wbbox(state, layout, images)).abs().max()
    assert diff < 1e-6
    model = load_checkpoint(tmp_path / "out.pt")["config"]["model"]
    assert (model["arch"], model["bbox_score"], model["num_parts"]) == ("bbox", "logit", K)


@pytest.mark.parametrize("layout", ["2022", "later"])
def test_resnet_baseline_is_placed_tensor_by_tensor_and_gives_the_authors_logits(tmp_path, images, layout):
    torch.manual_seed(4)
    baseline = randomised(build_model(ModelConfig(arch="resnet", backbone="resnet18", num_classes=5)), 4)
    state, where = to_authors(baseline, layout)
    args = authors_args(experiment="normal", arch="resnet18", dataset="pascal-part", num_classes=5, adv_train="trades")
    import_adv_part_model(save_authors(tmp_path / "normal.pt", state, args), tmp_path / "out.pt")
    assert_every_tensor_placed(tmp_path / "out.pt", state, where)
    net = torchvision.models.resnet18(num_classes=5)
    net.load_state_dict(theirs(state, LAYOUTS[layout]["net"]))
    mean, std = (state[LAYOUTS[layout]["baseline_normalize"] + n] for n in ("mean", "std"))
    with torch.no_grad():
        diff = (partcli.load_model(tmp_path / "out.pt")(images) - net.eval()((images - mean) / std)).abs().max()
    assert diff < 1e-6
    saved = load_checkpoint(tmp_path / "out.pt")["config"]
    assert (saved["model"]["arch"], saved["model"]["backbone"], saved["train"]["adv"]) == ("resnet", "resnet18",
                                                                                           "trades")
    assert saved["dataset"]["classes"] == ["aeroplane", "bird", "car", "cat", "dog"]
    assert len(saved["dataset"]["parts"]) == saved["model"]["num_parts"] == 15


def test_object_labels_import_with_one_segmenter_channel_per_class(tmp_path):
    state, _ = to_authors(part_model("bbox", num_parts=C, seed=5), "later")
    args = authors_args(experiment="object-wbbox-norm_img", seg_labels=C + 1)
    import_adv_part_model(save_authors(tmp_path / "object.pt", state, args), tmp_path / "out.pt")
    config = load_checkpoint(tmp_path / "out.pt")["config"]
    assert (config["model"]["num_parts"], config["dataset"]["seg_labels"]) == (C, "object")
    assert len(config["dataset"]["parts"]) == K  # the dataset's parts, which evaluate merges per class


# ---------------------------------------------------------------------------------------------- bare state dicts
def test_a_state_dict_without_args_is_recognised_by_its_keys(tmp_path, images):
    model = part_model("downsampled", pool=2, seed=6)
    state, where = to_authors(model, "2022")
    torch.save(state, tmp_path / "bare.pt")
    result = import_adv_part_model(tmp_path / "bare.pt", tmp_path / "out.pt")
    assert (result.recognised.arch, result.recognised.pool, result.recognised.backbone) == ("downsampled", 2,
                                                                                             "resnet18")
    assert result.recognised_from == "keys" and result.names.name == "cityscapes"  # the one dataset with 2/9
    assert_every_tensor_placed(tmp_path / "out.pt", state, where)
    with torch.no_grad():
        diff = (partcli.load_model(tmp_path / "out.pt")(images) - reference_pooling(state, "2022", images, 2)).abs()
    assert diff.max() < 1e-6
    assert "adv" not in load_checkpoint(tmp_path / "out.pt")["config"]["train"]  # unknown without args


def test_a_bbox_state_dict_needs_the_experiment_its_weights_cannot_tell(tmp_path, wbbox_model):
    state, _ = to_authors(wbbox_model, "later")
    src = save_authors(tmp_path / "bare.pt", state, None)
    with pytest.raises(PartcliError, match="norm_img.*--experiment"):
        import_adv_part_model(src, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
    result = import_adv_part_model(src, tmp_path / "out.pt", experiment="part-wbbox-norm_img")
    assert (result.recognised.arch, result.recognised_from) == ("bbox", "keys and --experiment")


def test_part_imagenet_names_are_its_json_categories_in_the_authors_label_order():
    names = known_dataset("part-imagenet")
    assert names.classes == ["Aeroplane", "Bicycle", "Biped", "Bird", "Boat", "Bottle", "Car", "Fish", "Quadruped",
                             "Reptile", "Snake"]
    authors_counts = {"Quadruped": 4, "Biped": 5, "Fish": 4, "Bird": 5, "Snake": 2, "Reptile": 4, "Car": 3,
                      "Bicycle": 4, "Boat": 2, "Aeroplane": 5, "Bottle": 2}
    assert {c: sum(p.cls == c for p in names.parts) for c in names.classes} == authors_counts
    assert [p.name for p in names.parts[:7]] == ["Aeroplane/Head", "Aeroplane/Body", "Aeroplane/Engine",
                                                 "Aeroplane/Wing", "Aeroplane/Tail", "Bicycle/Body", "Bicycle/Head"]
    assert [p.name for p in names.parts[21:23]] == ["Bottle/Mouth", "Bottle/Body"]


# ---------------------------------------------------------------------------------------------- refusals
class Payload:
    """Unpickling it calls ``call(*args)``: what a malicious checkpoint does."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


class Opaque:
    """A class of the training code that a safe loader must not import."""

    def __init__(self):
        self.experiment = "part-pooling-4"


@pytest.mark.parametrize("make,named", [
    (lambda marker: Payload(os.system, f"touch {marker}"), "system"),
    (lambda marker: Payload(open, str(marker), "w"), "open"),
    (lambda marker: Opaque(), "Opaque"),
])
def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path, make, named):
    marker = tmp_path / "marker"
    src = tmp_path / "evil.pt"
    torch.save({"state_dict": {"module.0.mean": torch.zeros(1)}, "args": make(marker)}, src)
    result = run_cli("import", "adv-part-model", src, "--out", tmp_path / "out.pt")
    assert result.code == 2 and str(src) in result.err and named in result.err and "code" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


MINIMAL_PART = {"module.segmenter.0.mean": torch.zeros(1, 3, 1, 1), "module.segmenter.0.std": torch.ones(1, 3, 1, 1),
                "module.segmenter.1.encoder.conv1.weight": torch.zeros(1), "module.core_model.1.weight": torch.zeros(1)}


@pytest.mark.parametrize("changes,named", [
    ({"experiment": "part-wbbox-semi"}, "without norm_img"),
    ({"experiment": "part-wbbox-norm_img-conv1d"}, "conv1d"),
    ({"experiment": "part-wbbox-norm_img-no_score"}, "no_score"),
    ({"experiment": "part-pooling-4-nobg-semi"}, "nobg"),
    ({"experiment": "part-pooling-4-bn"}, "bn (a BatchNorm after pooling)"),
    ({"experiment": "part-mask-inpt-semi"}, "model type 'mask'"),
    ({"experiment": "part-2heads_e"}, "two-headed"),
    ({"experiment": "part-pixel-part"}, "pixel-count"),
    ({"experiment": "fg-wbbox-norm_img"}, "fg labels"),
    ({"experiment": "part-seg-only"}, "seg-only"),
    ({"seg_arch": "deeplabv3"}, "--seg-arch deeplabv3"),
    ({"experiment": "part-2heads_d", "obj_det_arch": "dino"}, "DINO"),
    ({"experiment": "normal", "arch": "efficientnet_b0"}, "--arch efficientnet_b0"),
])
def test_variants_partcli_cannot_build_are_refused_by_name(tmp_path, changes, named):
    src = save_authors(tmp_path / "variant.pt", MINIMAL_PART, authors_args(**changes))
    result = run_cli("import", "adv-part-model", src, "--out", tmp_path / "out.pt")
    assert result.code == 2 and named in result.err and str(src) in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1 and not (tmp_path / "out.pt").exists()


def test_placement_is_strict_extra_missing_or_reshaped_tensors_are_refused_by_key(tmp_path, pooling_model):
    state, _ = to_authors(pooling_model, "2022")
    extra = {**state, "module.core_model.7.weight": torch.zeros(50)}  # a layer where their head has a ReLU
    missing = {k: v for k, v in state.items() if k != "module.core_model.6.running_var"}
    reshaped = {**state, "module.core_model.8.weight": torch.zeros(3, 50)}  # 3 classes where args say 2
    cases = [(extra, "'module.core_model.7.weight' has no place"),
             (missing, "nothing in the file for partcli's 'head.fc.1.running_var'"),
             (reshaped, "'module.core_model.8.weight' (3×50) does not fit partcli's 'head.fc.3.weight' (2×50)")]
    for weights, message in cases:
        src = save_authors(tmp_path / "edited.pt", weights, authors_args())
        with pytest.raises(PartcliError, match=message.replace("(", r"\(").replace(")", r"\)")):
            import_adv_part_model(src, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_class_and_part_counts_that_do_not_match_data_or_dataset_are_refused(tmp_path, pooling_model,
                                                                             synthetic_data):
    state, _ = to_authors(pooling_model, "2022")
    src = save_authors(tmp_path / "pooling.pt", state, authors_args())
    with pytest.raises(PartcliError, match=r"2 classes, 9 part labels but --data .* has 5 classes, 19 parts"):
        import_adv_part_model(src, tmp_path / "out.pt", data=synthetic_data)
    with pytest.raises(PartcliError, match="but --dataset pascal-part has 5 classes, 15 parts"):
        import_adv_part_model(src, tmp_path / "out.pt", dataset="pascal-part")
    with pytest.raises(PartcliError, match="'imagenet', whose classes partcli does not know"):
        import_adv_part_model(save_authors(tmp_path / "in.pt", state, authors_args(dataset="imagenet")),
                              tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_files_that_are_not_the_authors_checkpoints_are_refused_in_one_line(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    torch.save({"epoch": 3, "acc": 0.5}, tmp_path / "dict.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    torch.save({"state_dict": {"module.0.mean": torch.zeros(1), "module.0.std": torch.ones(1),
                               "module.1.encoder.conv1.weight": torch.zeros(1)}}, tmp_path / "segmenter.pt")
    save_checkpoint(tmp_path / "partcli.pt", {"model": {}, "config": {"model": {}}})
    cases = {"missing.pt": "no such file", "garbage.pt": "not a PyTorch checkpoint", "dict.pt": "no state_dict",
             "other.pt": "'weight' fits neither", "segmenter.pt": "segmenter alone",
             "partcli.pt": "already a partcli checkpoint", ".": "a folder"}
    for name, message in cases.items():
        result = run_cli("import", "adv-part-model", tmp_path / name, "--out", tmp_path / "out.pt")
        assert result.code == 2 and message in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert not (tmp_path / "out.pt").exists()


# ---------------------------------------------------------------------------------------------- the command
def test_cli_round_trip_then_load_evaluate_and_info(tmp_path, synthetic_data, images):
    """A model of the synthetic dataset's 5 classes and 19 parts, named by --data, evaluated on that dataset."""
    model = part_model("bbox", num_parts=19, num_classes=5, seed=7)
    state, _ = to_authors(model, "later")
    args = authors_args(experiment="part-wbbox-norm_img-semi", dataset="part-imagenet", num_classes=5, seg_labels=20)
    src, out = save_authors(tmp_path / "wbbox.pt", state, args), tmp_path / "imported.pt"
    result = run_cli("import", "adv-part-model", src, "--out", out, "--data", synthetic_data)
    assert result.code == 0, result.output
    assert result.err.startswith(f"wrote {out}: bbox model") and len(result.err.strip().splitlines()) == 1
    with torch.no_grad():
        assert (partcli.load_model(out)(images) - model(images)).abs().max() < 1e-6
    evaluated = run_cli("evaluate", "--ckpt", out, "--data", synthetic_data, "--image-size", "32", "--device", "cpu",
                        "--out", tmp_path / "evaluate.csv")
    assert evaluated.code == 0, evaluated.output
    assert "imported from" in run_cli("info", out).out
    again = run_cli("import", "adv-part-model", src, "--out", out, "--data", synthetic_data)
    assert again.code == 2 and "--overwrite" in again.err
    assert run_cli("import", "adv-part-model", src, "--out", out, "--data", synthetic_data, "--overwrite").code == 0
