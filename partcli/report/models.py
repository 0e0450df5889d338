"""Which checkpoints are "the same model": runs whose configurations differ only in their seed (and paths).

A checkpoint's configuration is its run folder's ``config.yaml`` (``RUN/checkpoints/*.pt`` → ``RUN``), or the
training configuration stored in the checkpoint when the run folder is gone. Seeds of one configuration are
pooled into mean ± CI; paths (run folder, dataset copy, --init checkpoint) and where it ran (device, workers)
do not make another model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from partcli.errors import PartcliError

NOT_MODEL = ("seed", "out", "data", "device", "workers", "partcli_version")
ARCH_NAMES = {"resnet": "{backbone} baseline", "downsampled": "downsampled part model ({backbone})",
              "bbox": "bounding-box part model ({backbone})", "twohead": "two-headed part model ({backbone})",
              "pixel": "pixel part model ({backbone})"}
ARCH_ORDER = tuple(ARCH_NAMES)
TRAINING_ORDER = ("none", "pgd", "trades")


@dataclass(frozen=True)
class ModelInfo:
    """A checkpoint's model configuration: ``key`` is the same for all seeds of one configuration."""

    key: str
    config: dict[str, Any]  # empty when the checkpoint's configuration could not be found
    run: str  # the run folder's name ("" when unknown)

    @property
    def adv(self) -> str | None:
        return self.config.get("adv")

    @property
    def seed(self) -> Any:
        return self.config.get("seed")


def checkpoint_config(path: Path | None) -> dict[str, Any]:
    """The training configuration of a checkpoint file (``{}`` when neither its run folder nor it can be read)."""
    if path is None:
        return {}
    run_config = path.parent.parent / "config.yaml" if path.parent.name == "checkpoints" else None
    if run_config is not None and run_config.is_file():
        try:
            doc = yaml.safe_load(run_config.read_text())
            if isinstance(doc, dict):
                return doc
        except (yaml.YAMLError, UnicodeDecodeError):
            pass
    if not path.is_file():
        return {}
    from partcli.checkpoint import Checkpoint  # torch: only when there is no run folder to read

    try:
        return Checkpoint.load(path).train
    except PartcliError:
        return {}


def model_info(checkpoint: str, resolved: Path | None) -> ModelInfo:
    config = checkpoint_config(resolved)
    path = Path(checkpoint)
    run = path.parent.parent.name if path.parent.name == "checkpoints" else ""
    if not config:
        return ModelInfo(f"checkpoint:{checkpoint}", {}, run)
    return ModelInfo(configuration_key(config, path.name), config, run)


def configuration_key(config: dict[str, Any], checkpoint: str = "best.pt") -> str:
    """The same for every seed of one training configuration (and checkpoint file name)."""
    identity = {k: v for k, v in config.items() if k not in NOT_MODEL}
    identity["init"] = bool(identity.get("init"))  # started from another run's weights, whichever file
    identity["checkpoint"] = checkpoint  # best.pt and last.pt of one run are two models, not two seeds
    return json.dumps(identity, sort_keys=True, default=str)


def describe(config: dict[str, Any]) -> str:
    """A short name: architecture, backbone and training method, e.g. "bounding-box part model (resnet18), PGD"."""
    if not config:
        return "unknown model"
    arch = ARCH_NAMES.get(config.get("arch"), "{arch} ({backbone})")
    name = arch.format(arch=config.get("arch"), backbone=config.get("backbone", "?"))
    return f"{name}, {training(config)}"


def training(config: dict[str, Any]) -> str:
    adv = config.get("adv")
    if adv == "pgd":
        return "PGD"
    if adv == "trades":
        return f"TRADES β={config.get('beta', '?'):g}" if isinstance(config.get("beta"), (int, float)) else "TRADES"
    return "clean" if adv == "none" else "training unknown"


def labels(infos: list[ModelInfo]) -> dict[str, str]:
    """A distinct label per model key: ``describe``, plus the settings that tell apart models it names alike."""
    by_label: dict[str, list[ModelInfo]] = {}
    for info in {i.key: i for i in infos}.values():
        by_label.setdefault(describe(info.config), []).append(info)
    out = {}
    for label, group in by_label.items():
        if len(group) == 1:
            out[group[0].key] = label if group[0].config else f"{label} ({group[0].key.removeprefix('checkpoint:')})"
            continue
        identities = {i.key: json.loads(i.key) if i.config else {"checkpoint": i.key} for i in group}
        keys = sorted({k for identity in identities.values() for k in identity})
        differ = [k for k in keys if len({json.dumps(d.get(k)) for d in identities.values()}) > 1]
        for info in group:
            extra = ", ".join(f"{k}={_short(identities[info.key].get(k))}" for k in differ[:3])
            out[info.key] = f"{label} ({extra})"
    return out


def sort_key(info: ModelInfo, label: str) -> tuple:
    """Table order: training method (clean, PGD, TRADES by β), then baseline before part models, then label."""
    cfg = info.config
    adv = TRAINING_ORDER.index(cfg["adv"]) if cfg.get("adv") in TRAINING_ORDER else len(TRAINING_ORDER)
    beta = cfg.get("beta", 0) if cfg.get("adv") == "trades" and isinstance(cfg.get("beta"), (int, float)) else 0
    arch = ARCH_ORDER.index(cfg["arch"]) if cfg.get("arch") in ARCH_ORDER else len(ARCH_ORDER)
    return adv, beta, arch, label


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
