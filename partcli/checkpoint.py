"""Versioned checkpoints: atomic writes, ``weights_only`` loading, clear errors for old files."""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from partcli.errors import PartcliError
from partcli.files import atomic_write
from partcli.models.registry import ModelConfig, build_model
from partcli.settings_history import with_added_settings
from partcli.version import __version__

CHECKPOINT_VERSION = 4
# Format 1 (partcli 0.1) had part-model heads without BatchNorm; its baselines (arch resnet) are unchanged.
# Format 2 predates --bbox-score: its bbox models used the probability score (upgraded on load, see below).
# Format 3 predates --output-stride: its segmenters have stride 16 (the default). Format 4 exists so that a partcli
# that does not know the setting refuses a stride-8 model instead of running it with stride 16 (same weight shapes).
READABLE_VERSIONS = (1, 2, 3, CHECKPOINT_VERSION)
RESUMABLE_VERSIONS = (2, 3, CHECKPOINT_VERSION)  # a run of these versions can be continued by this partcli


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors and plain values) plus version fields atomically (``files.atomic_write``: readable
    by others as the umask allows)."""
    payload = {"format_version": CHECKPOINT_VERSION, "partcli_version": __version__, **state}
    with atomic_write(path) as fh:
        torch.save(payload, fh)


RESUME_KEYS = ("optimizer", "scheduler", "scaler", "epoch", "rng", "best_metric", "metrics")


@dataclass(frozen=True)
class DatasetDescription:
    """``config.dataset``: the dataset the model was trained on; None where an older or imported file does not say."""

    name: str | None = None
    classes: list[str] | None = None
    parts: list[dict[str, str]] | None = None  # {"name", "class"}, in part-id order
    image_size: int | None = None  # the training resolution
    seg_labels: str | None = None  # --seg-labels, the label kind of the segmenter; ``label_kind`` gives its default

    @property
    def label_kind(self) -> str:
        return self.seg_labels or "part"

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "DatasetDescription":
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Checkpoint:
    """A checkpoint file as one object (docs/formats.md "Checkpoint"): what rebuilds the model, how it was trained, on
    what, its weights and, for a run's checkpoints, the state that ``--resume`` continues from. ``from_state`` reads
    the stored dict of any readable format version (upgraded to today's settings); ``to_state`` writes it back."""

    model_config: ModelConfig
    weights: Any  # the model's state dict (``load_weights`` refuses one that does not fit)
    train: dict[str, Any] = field(default_factory=dict)  # the run's training configuration (config.yaml's keys)
    dataset: DatasetDescription = field(default_factory=DatasetDescription)
    epoch: int | None = None  # the last finished epoch
    best_metric: float | None = None  # the selection metric of best.pt so far
    metrics: list[dict[str, Any]] | None = None  # the metrics.csv rows up to ``epoch``
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None  # empty unless --amp fp16 on CUDA
    rng: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None  # only in checkpoints made by ``partcli import``
    format_version: int | None = None  # the file's, as read (None: not written yet)
    partcli_version: str | None = None

    @classmethod
    def load(cls, path: str | Path) -> "Checkpoint":
        """Load a partcli checkpoint safely (``weights_only=True``) on the CPU; refuse what is not one in one line."""
        return cls.from_state(_read(Path(path)), path)

    @classmethod
    def from_state(cls, state: Any, source: str | Path = "checkpoint") -> "Checkpoint":
        """The checkpoint a stored dict describes: its format version checked, older versions' configurations given
        the settings added since (``upgrade_config``); ``source`` names the file in messages."""
        config = _checked(state, source)["config"]
        return cls(model_config=ModelConfig.from_dict(config["model"]), weights=state["model"],
                   train=dict(config.get("train") or {}), dataset=DatasetDescription.from_dict(config.get("dataset") or {}),
                   provenance=state.get("provenance"), format_version=state["format_version"],
                   partcli_version=state.get("partcli_version"), **{k: state.get(k) for k in RESUME_KEYS})

    @property
    def config(self) -> dict[str, Any]:
        """The stored ``config``: its ``model``, ``train`` and ``dataset`` sections as plain dicts (empty ones left
        out), for looking a setting up by name (``compare --by``, ``info --json``)."""
        config = {"model": self.model_config.to_dict(), "train": dict(self.train), "dataset": self.dataset.to_dict()}
        return {k: v for k, v in config.items() if v or k == "model"}

    def to_state(self) -> dict[str, Any]:
        """The dict ``save_checkpoint`` writes (entries that are None left out)."""
        state = {"format_version": self.format_version, "partcli_version": self.partcli_version,
                 "config": self.config, "model": self.weights,
                 "provenance": self.provenance, **{k: getattr(self, k) for k in RESUME_KEYS}}
        return {k: v for k, v in state.items() if v is not None}


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """``Checkpoint.load(path)`` as the stored dict (for scripts that read its entries)."""
    return Checkpoint.load(path).to_state()


def _read(path: Path) -> Any:
    if path.is_dir():
        raise PartcliError(f"{path}: a folder, not a checkpoint file (e.g. give RUN/checkpoints/best.pt)")
    if not path.is_file():
        raise PartcliError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # e.g. a plain pickle's "Detected pickle protocol 4": refused in one line below
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - arbitrary bytes make torch.load raise almost any type
        raise PartcliError(f"{path}: not a partcli checkpoint (cannot be loaded safely: {exc.__class__.__name__})") from None


def _checked(state: Any, source: str | Path) -> dict[str, Any]:
    """``state`` if it is a checkpoint this partcli reads, upgraded; else the one-line refusal."""
    if not isinstance(state, dict) or "format_version" not in state or "model" not in state:
        raise PartcliError(f"{source}: not a partcli checkpoint (no format_version/model entries)")
    if state["format_version"] not in READABLE_VERSIONS:
        raise PartcliError(
            f"{source}: checkpoint format_version {state['format_version']!r} is unknown to partcli {__version__} "
            f"(reads {', '.join(map(str, READABLE_VERSIONS))}); upgrade partcli to load it"
        )
    config = state.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise PartcliError(f"{source}: not a partcli checkpoint (no model configuration)")
    if state["format_version"] == 1 and config["model"].get("arch") != "resnet":
        raise PartcliError(f"{source}: a format-1 part model, whose classifier head (no BatchNorm) partcli "
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


def model_from_checkpoint(ckpt: Checkpoint, source: str | Path = "checkpoint") -> nn.Module:
    """Rebuild the model a checkpoint describes and fill in its weights (``source`` names the file)."""
    model = build_model(ckpt.model_config)
    load_weights(model, ckpt.weights, source)
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
    model = model_from_checkpoint(Checkpoint.load(path), path)
    return model.to(device).eval()
