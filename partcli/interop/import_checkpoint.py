"""``partcli import adv-part-model``: one of the paper authors' checkpoints as a format-3 partcli checkpoint.

The file is read without running pickled code (``safe_load``), its model recognised from its ``args`` (or, for a
bare state dict, from its keys and shapes) and its tensors placed strictly (``adv_part_model``). The classes and
parts come from ``--data``, ``--dataset``, the file's ``args.dataset`` or, failing those, the one known dataset
with the model's counts (``dataset_names``). The checkpoint records where it came from under ``provenance``.
"""
from __future__ import annotations

from argparse import Namespace
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from partcli.checkpoint import Checkpoint, DatasetDescription, save_checkpoint
from partcli.data.label_kinds import label_kind
from partcli.errors import PartcliError, check_writable, writing
from partcli.files import file_sha256
from partcli.interop.adv_part_model import Layout, Recognised, args_from_keys, fill_model, recognise, split_layout
from partcli.interop.dataset_names import (KNOWN_DATASETS, DatasetNames, authors_dataset, dataset_by_counts,
                                           known_dataset, prepared_dataset)
from partcli.interop.safe_load import read_untrusted
from partcli.models.registry import ModelConfig, build_model

IMAGE_SIZE = 224  # the resolution of every model the authors trained (their datasets' input_dim)


@dataclass(frozen=True)
class ImportResult:
    out: Path
    recognised: Recognised
    naming: str  # the key layout: 2022 or later
    recognised_from: str  # args, keys, or keys and --experiment
    names: DatasetNames
    tensors: int


def import_adv_part_model(src: str | Path, out: str | Path, data: str | Path | None = None,
                          dataset: str | None = None, experiment: str | None = None,
                          overwrite: bool = False) -> ImportResult:
    """Python API of ``partcli import adv-part-model``: convert ``src`` and write ``out``; returns what was done.

    ``data``: a prepared dataset naming the classes and parts; ``dataset``: one of ``KNOWN_DATASETS`` instead;
    ``experiment``: the authors' experiment string, for a file that does not record its args.
    """
    src, out = Path(src), Path(out)
    _check_options(src, out, data, dataset, overwrite)
    given = prepared_dataset(data) if data is not None else None
    if dataset is not None:
        given = replace(known_dataset(dataset), origin=f"--dataset {dataset}")
    stored = read_untrusted(src)
    state_dict, args, extra = _unpack(stored, src)
    layout = split_layout(state_dict, str(src))
    args, recognised_from = _effective_args(args, layout, experiment, src)
    recognised = recognise(args, str(src))
    names = _names(recognised, given, getattr(args, "dataset", None), src)
    cfg = model_config(recognised, names)
    check_writable(out)
    model = build_model(cfg)
    fill_model(model, layout, cfg.arch, str(src))
    train = train_config(recognised, args if recognised_from == "args" else None)
    dataset = DatasetDescription(name=names.name, classes=list(names.classes),
                                 parts=[{"name": p.name, "class": p.cls} for p in names.parts], image_size=IMAGE_SIZE,
                                 seg_labels=recognised.seg_labels)
    imported = Checkpoint(model_config=cfg, weights=model.state_dict(), train=train, dataset=dataset,
                          epoch=_number(extra.get("epoch"), int),
                          provenance=provenance(src, layout, recognised, recognised_from, names, args, extra))
    with writing(out):
        save_checkpoint(out, imported.to_state())
    return ImportResult(out, recognised, layout.naming, recognised_from, names, len(layout.entries))


def _check_options(src: Path, out: Path, data: str | Path | None, dataset: str | None, overwrite: bool) -> None:
    if data is not None and dataset is not None:
        raise PartcliError("--data and --dataset: give one (--data names the classes and parts itself)")
    if dataset is not None and dataset not in KNOWN_DATASETS:
        raise PartcliError(f"--dataset {dataset!r}: expected one of {', '.join(KNOWN_DATASETS)}")
    if out.is_dir():
        raise PartcliError(f"--out {out}: a folder; give the checkpoint file to write, e.g. {out / 'model.pt'}")
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise PartcliError(f"--out {out}: the file being imported; write the partcli checkpoint elsewhere")
    if out.exists() and not overwrite:
        raise PartcliError(f"--out {out}: exists; pass --overwrite to replace it")


def _unpack(stored: Any, src: Path) -> tuple[dict[str, Any], Namespace | None, dict[str, Any]]:
    """(state dict, the authors' args or None, the file's other entries) of what ``src`` holds."""
    if isinstance(stored, dict) and "format_version" in stored and "model" in stored:
        raise PartcliError(f"{src}: already a partcli checkpoint (format {stored['format_version']}); use it as it is")
    if isinstance(stored, dict) and isinstance(stored.get("state_dict"), dict):
        args = stored.get("args")
        if isinstance(args, dict) and all(isinstance(k, str) for k in args):  # args re-saved as vars(args)
            args = Namespace(**args)
        return stored["state_dict"], args if isinstance(args, Namespace) else None, stored
    if isinstance(stored, dict) and stored and all(isinstance(v, torch.Tensor) for v in stored.values()):
        return stored, None, {}
    raise PartcliError(f"{src}: neither a partcli checkpoint nor one of the paper authors' (no state_dict of tensors)")


def _effective_args(args: Namespace | None, layout: Layout, experiment: str | None,
                    src: Path) -> tuple[Namespace, str]:
    """The arguments to recognise the model from, and where they came from."""
    if args is None:
        return args_from_keys(layout, experiment, str(src)), "keys and --experiment" if experiment else "keys"
    recorded = getattr(args, "experiment", None)
    if experiment is not None and recorded is not None and experiment != recorded:
        raise PartcliError(f"--experiment {experiment}: {src} records experiment {recorded!r}; leave --experiment out")
    if recorded is None:
        if experiment is None:
            raise PartcliError(f"{src}: its args have no experiment; give --experiment (e.g. part-wbbox-norm_img)")
        args = Namespace(**{**vars(args), "experiment": experiment})
    return args, "args"


def _names(rec: Recognised, given: DatasetNames | None, authors_name: Any, src: Path) -> DatasetNames:
    """The classes and parts of the model, checked against its counts."""
    if given is None and authors_name is not None:
        known = authors_dataset(str(authors_name))
        if known is None:
            raise PartcliError(f"{src}: trained on the authors' {authors_name!r}, whose classes partcli does not know; "
                               "give --data with a prepared dataset of its classes and parts")
        given = replace(known_dataset(known), origin=f"its args.dataset {authors_name!r}")
    parts = rec.channels if rec.seg_labels == "part" else None
    if given is None:
        given = dataset_by_counts(rec.num_classes, parts)
        if given is None:
            raise PartcliError(f"{src}: cannot tell the dataset of its {rec.num_classes} classes"
                               f"{'' if parts is None else f' and {parts} parts'}; give --data or --dataset")
        given = replace(given, origin=f"{given.name} (the one dataset of its counts)")
    labels = label_kind(rec.seg_labels).channels(len(given.classes), given.part_to_class())[0]
    if len(given.classes) != rec.num_classes or (rec.channels is not None and rec.channels != labels):
        model = f"{rec.num_classes} classes" + (f", {rec.channels} {rec.seg_labels} labels" if rec.channels else "")
        raise PartcliError(f"{src}: its model has {model} but {given.origin} has {len(given.classes)} classes, "
                           f"{len(given.parts)} parts; give --data with a prepared dataset of its classes and parts")
    return given


def model_config(rec: Recognised, names: DatasetNames) -> ModelConfig:
    """partcli's configuration of the recognised model (a baseline lists the dataset's parts, as training does)."""
    num_parts, part_to_class = label_kind(rec.seg_labels).channels(len(names.classes), names.part_to_class())
    return ModelConfig(arch=rec.arch, backbone=rec.backbone, num_classes=rec.num_classes, num_parts=num_parts,
                       part_to_class=part_to_class, pool=rec.pool, bbox_score="logit")


def train_config(rec: Recognised, args: Namespace | None) -> dict[str, Any]:
    """What is known of the training, under partcli's option names (only the model when there are no args)."""
    train: dict[str, Any] = {"arch": rec.arch, "backbone": rec.backbone, "image_size": IMAGE_SIZE,
                             "seg_labels": rec.seg_labels}
    if args is None:
        return train
    adv = getattr(args, "adv_train", "none")
    train["adv"] = adv if isinstance(adv, str) else "none"
    for name, field, kind in (("eps", "epsilon", float), ("steps", "atk_steps", int), ("epochs", "epochs", int),
                              ("seg_frac", "semi_label", float), ("seed", "seed", int)):
        value = _number(getattr(args, field, None), kind)
        if value is not None and (name not in ("eps", "steps") or train["adv"] != "none"):
            train[name] = value
    train["pretrained"] = "imagenet" if getattr(args, "pretrained", False) else None
    return train


def provenance(src: Path, layout: Layout, rec: Recognised, recognised_from: str, names: DatasetNames,
               args: Namespace, extra: dict[str, Any]) -> dict[str, Any]:
    """Where the checkpoint came from, in plain values."""
    dataset = getattr(args, "dataset", None)
    return {"importer": "adv-part-model", "source": str(src.resolve()), "sha256": file_sha256(src),
            "naming": layout.naming, "recognised_from": recognised_from, "experiment": rec.experiment,
            "authors_dataset": dataset if isinstance(dataset, str) else None, "names_from": names.origin,
            "tensors": layout.counts(), "best_acc1": _number(extra.get("best_acc1"), float)}


def _number(value: Any, kind: type) -> Any:
    """``value`` as a plain ``kind`` (a one-element tensor too); None when it is not a number."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return kind(value)
