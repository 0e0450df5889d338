"""Human-readable summaries of a checkpoint or a prepared dataset, for ``partcli info``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from partcli.checkpoint import Checkpoint
from partcli.data.contract import (SPLITS, DatasetInfo, check_split_files, read_dataset_info, read_split,
                                   refuse_internal)
from partcli.errors import PartcliError
from partcli.models.registry import ModelConfig, build_model, model_catalogue
from partcli.progress import plain


def describe(path: str | Path) -> Table:
    path = Path(path)
    if path.is_dir():
        return describe_dataset(path)
    if path.is_file():
        return describe_checkpoint(path)
    raise PartcliError(f"{path}: no such file or folder; give a checkpoint (.pt) or a prepared dataset folder")


def summarize(path: str | Path) -> dict[str, Any]:
    """``info --json``: a checkpoint's versions, epoch, best metric, provenance and whole configuration (``config``:
    model, train, dataset), or a prepared dataset's description (classes, parts, counts, source)."""
    path = Path(path)
    if path.is_dir():
        info = _checked_dataset(path)
        return {"kind": "dataset", "path": str(path), "name": info.name, "format_version": info.format_version,
                "classes": list(info.classes), "parts": [{"name": p.name, "class": p.cls} for p in info.parts],
                "counts": info.counts, "source": info.source}
    if not path.is_file():
        describe(path)  # the one-line error
    ckpt = Checkpoint.load(path)
    return {"kind": "checkpoint", "path": str(path), "format_version": ckpt.format_version,
            "partcli_version": ckpt.partcli_version, "epoch": ckpt.epoch, "best_metric": ckpt.best_metric,
            "parameters": count_parameters(ckpt.model_config), "provenance": ckpt.provenance, "config": ckpt.config}


def describe_checkpoint(path: Path) -> Table:
    ckpt = Checkpoint.load(path)
    model, train, data = ckpt.model_config, ckpt.train, ckpt.dataset
    n_params = count_parameters(model)
    table = Table(title=plain(f"checkpoint {path}"), show_header=False)
    origin = ckpt.provenance  # written by `partcli import`: the file, its hash, what it was recognised as
    imported = [("imported from", f"{origin.get('source')} (sha256 {str(origin.get('sha256'))[:12]}…, "
                 f"{origin.get('importer')} experiment {origin.get('experiment')!r}, {origin.get('naming')} keys)")
                ] if isinstance(origin, dict) else []
    rows = [
        ("format_version", ckpt.format_version), ("partcli_version", ckpt.partcli_version),
        ("arch", model.arch), ("backbone", model.backbone), ("classes", model.num_classes),
        ("parts (K)", model.num_parts), ("parameters", f"{n_params:,}"),
        *([("bbox score", model.bbox_score)] if model.arch == "bbox" else []),
        *([("output stride", model.output_stride)] if model.is_part_model else []),
        ("initial weights", train.get("init") or train.get("pretrained") or "random"),
        ("dataset", data.name or "?"), ("image size", data.image_size or "?"),
        ("training", train.get("adv", "?")), ("epoch", ckpt.epoch),
        ("best metric", ckpt.best_metric),
        *imported,
    ]
    for key, value in rows:
        table.add_row(key, plain(value))
    return table


def count_parameters(cfg: ModelConfig) -> int:
    """Trainable parameters of the model ``cfg`` describes (BatchNorm statistics and buffers excluded).

    Built on the meta device: no memory is allocated and no weights are initialised, so it is instant.
    """
    with torch.device("meta"):
        model = build_model(cfg)
    return sum(p.numel() for p in model.parameters())


def describe_dataset(path: Path) -> Table:
    """The dataset's classes, parts and counts, after checking every split and the headers of all its files."""
    info = _checked_dataset(path)
    table = Table(title=plain(f"prepared dataset {path} ({info.name}, format {info.format_version})"))
    table.add_column("class")
    table.add_column("parts")
    splits = list(info.counts)
    for split in splits:
        table.add_column(split, justify="right")
    for cls in info.classes:
        parts = ", ".join(p.name for p in info.parts if p.cls == cls)
        table.add_row(plain(cls), plain(parts), *[str(info.counts[s].get(cls, 0)) for s in splits])
    table.caption = plain("source: " + ", ".join(f"{k}={v}" for k, v in info.source.items()))
    return table


def _checked_dataset(path: Path) -> DatasetInfo:
    """The dataset's description, after checking every split and the headers of all its files."""
    info = read_dataset_info(path)
    refuse_internal(path, info)
    for split in SPLITS:
        check_split_files(path, read_split(path, split, info))
    return info


def describe_models() -> Table:
    """The registered architectures (``--arch``) and where their ``--backbone`` names come from."""
    table = Table(title="architectures (--arch)")
    for column in ("arch", "kind", "what"):
        table.add_column(column)
    for name, kind, summary in model_catalogue():
        table.add_row(name, kind, plain(summary))
    table.caption = ("--backbone: a baseline takes a torchvision classification model (torchvision.models."
                     "list_models()) or a timm model (timm.list_models(); timm:<name> to prefer timm's); a part "
                     "model takes a segmentation_models_pytorch encoder (segmentation_models_pytorch.encoders."
                     "get_encoder_names(), or tu-<timm name>)")
    return table
