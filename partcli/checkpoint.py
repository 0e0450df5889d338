"""Versioned checkpoints: atomic writes, ``weights_only`` loading, clear errors for old files."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from partcli.errors import PartcliError
from partcli.files import atomic_write
from partcli.models.registry import ModelConfig, build_model
from partcli.settings_history import with_added_settings
from partcli.version import __version__

CHECKPOINT_VERSION = 3
# Format 1 (partcli 0.1) had part-model heads without BatchNorm; its baselines (arch resnet) are unchanged.
# Format 2 predates --bbox-score: its bbox models used the probability score (upgraded on load, see below).
READABLE_VERSIONS = (1, 2, CHECKPOINT_VERSION)
RESUMABLE_VERSIONS = (2, CHECKPOINT_VERSION)  # a run of these versions can be continued by this partcli


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors and plain values) plus version fields atomically (``files.atomic_write``: readable
    by others as the umask allows)."""
    payload = {"format_version": CHECKPOINT_VERSION, "partcli_version": __version__, **state}
    with atomic_write(path) as fh:
        torch.save(payload, fh)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a partcli checkpoint safely (``weights_only=True``) on the CPU and check its format version."""
    path = Path(path)
    if path.is_dir():
        raise PartcliError(f"{path}: a folder, not a checkpoint file (e.g. give RUN/checkpoints/best.pt)")
    if not path.is_file():
        raise PartcliError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # e.g. a plain pickle's "Detected pickle protocol 4": refused in one line below
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - arbitrary bytes make torch.load raise almost any type
        raise PartcliError(f"{path}: not a partcli checkpoint (cannot be loaded safely: {exc.__class__.__name__})") from None
    if not isinstance(state, dict) or "format_version" not in state or "model" not in state:
        raise PartcliError(f"{path}: not a partcli checkpoint (no format_version/model entries)")
    if state["format_version"] not in READABLE_VERSIONS:
        raise PartcliError(
            f"{path}: checkpoint format_version {state['format_version']!r} is unknown to partcli {__version__} "
            f"(reads {', '.join(map(str, READABLE_VERSIONS))}); upgrade partcli to load it"
        )
    config = state.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise PartcliError(f"{path}: not a partcli checkpoint (no model configuration)")
    if state["format_version"] == 1 and config["model"].get("arch") != "resnet":
        raise PartcliError(f"{path}: a format-1 part model, whose classifier head (no BatchNorm) partcli "
                           f"{__version__} no longer builds; retrain it with this version")
    return upgrade_config(state)


def upgrade_config(state: dict[str, Any]) -> dict[str, Any]:
    """Give an older checkpoint's configurations the settings added since, with the values its model was built
    with (so it loads as the same model); ``format_version`` still tells what the file was."""
    if state["format_version"] < CHECKPOINT_VERSION:
        for section in ("model", "train"):
            doc = state["config"].get(section)
            if isinstance(doc, dict):
                state["config"][section] = with_added_settings(doc)
    return state


def model_from_checkpoint(state: dict[str, Any], source: str | Path = "checkpoint") -> nn.Module:
    """Rebuild the model described in a loaded checkpoint and fill in its weights (``source`` names the file)."""
    model = build_model(ModelConfig.from_dict(state["config"]["model"]))
    load_weights(model, state["model"], source)
    return model


def load_weights(model: nn.Module, weights: Any, source: str | Path) -> None:
    """``model.load_state_dict(weights)``, with weights that do not fit the model refused in one line."""
    expected = model.state_dict()
    if not isinstance(weights, dict):
        raise PartcliError(f"{source}: its model weights are not a state dict; the file is damaged")
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    reshaped = [k for k in expected if k in weights and getattr(weights[k], "shape", None) != expected[k].shape]
    if missing or unexpected or reshaped:
        example = (reshaped or missing or unexpected)[0]
        raise PartcliError(f"{source}: its weights do not fit the model its configuration describes ({len(missing)} "
                           f"missing, {len(unexpected)} unexpected, {len(reshaped)} of another shape, e.g. "
                           f"{example!r}); the file was damaged or edited")
    model.load_state_dict(weights)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Public API: a ready, eval-mode model that maps N×3×H×W images in [0, 1] to class logits."""
    model = model_from_checkpoint(load_checkpoint(path), path)
    return model.to(device).eval()
