"""``partcli evaluate``: clean accuracy and part-mask pixel accuracy / mIoU of a checkpoint on a split."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from partcli.checkpoint import Checkpoint, model_from_checkpoint
from partcli.config import check_fields, parse_workers
from partcli.data.contract import read_dataset_info, refuse_internal
from partcli.data.dataset import PreparedDataset, eval_transform, upsampling_note
from partcli.data.label_kinds import label_kind
from partcli.errors import PartcliError
from partcli.evaluate.config import EvaluateConfig
from partcli.evaluate.results_csv import EVALUATE_COLUMNS, append_results, check_results_file
from partcli.evaluate.seg_metrics import confusion_matrix, foreground_pixel_accuracy, mean_iou, pixel_accuracy
from partcli.models.sources import ModelSource, check_logits, open_model
from partcli.progress import info, track
from partcli.runtime import describe_runtime, loader_options, pick_device, resolve_workers


@dataclass
class EvalResult:
    n: int
    clean_acc: float
    pixel_acc: float | None
    miou: float | None
    seconds: float
    fg_pixel_acc: float | None = None  # pixel accuracy over the object's pixels (0 for an all-background segmenter)
    row: dict[str, Any] | None = None  # the results-CSV row (``evaluate_checkpoint``)


EXTERNAL_IMAGE_SIZE = 224  # the resolution of a --model that does not say (RobustBench's ImageNet size)


def load_for_dataset(ckpt: str | Path | ModelSource, data: str | Path, split: str, image_size: int | None = None,
                     checkpoint: Checkpoint | None = None):
    """Load a model (a checkpoint path, or a ``ModelSource``) and a split it can be evaluated on; refuse a class/part
    mismatch. A partcli checkpoint works at its training size; another model at ``image_size`` (default 224).

    ``checkpoint``: the checkpoint already loaded by the caller (it is then not read again).
    """
    source = ckpt if isinstance(ckpt, ModelSource) else None
    if source is not None and source.checkpoint is None:
        return _load_external(source, data, split, image_size)
    if source is not None:
        checkpoint, ckpt = source.checkpoint, source.name
    if checkpoint is None:
        checkpoint = Checkpoint.load(ckpt)
    size = image_size or checkpoint.dataset.image_size or 224
    refuse_internal(data, read_dataset_info(data))
    ds = PreparedDataset(data, split, eval_transform(int(size)))
    model_cfg = checkpoint.model_config
    if model_cfg.num_classes != ds.info.num_classes:
        raise PartcliError(f"--ckpt {ckpt}: model has {model_cfg.num_classes} classes but {data} has "
                           f"{ds.info.num_classes}; evaluate it on the dataset it was trained for")
    # what the segmenter was trained to predict (--seg-labels)
    kind = label_kind(checkpoint.dataset.label_kind, f"--ckpt {ckpt}: --seg-labels")
    expected = kind.channels(ds.info.num_classes, ds.info.part_to_class())[0]
    if model_cfg.arch != "resnet" and model_cfg.num_parts != expected:
        raise PartcliError(f"--ckpt {ckpt}: model predicts {model_cfg.num_parts} {kind.name} labels but {data} has "
                           f"{expected}")
    ds.transform = kind.transform(ds.info.part_to_class(), ds.transform)  # object/box: their own labels
    model = source.model if source is not None else model_from_checkpoint(checkpoint, f"--ckpt {ckpt}").eval()
    return model, ds


def _load_external(source: ModelSource, data: str | Path, split: str, image_size: int | None):
    """A ``--model`` and the split at ``image_size``; its output is checked on two samples (N×C logits)."""
    refuse_internal(data, read_dataset_info(data))
    size = image_size or EXTERNAL_IMAGE_SIZE
    ds = PreparedDataset(data, split, eval_transform(size))
    note = upsampling_note(ds, size)
    if note:
        info(note + ("" if image_size else " (224: the default for --model; --image-size sets it)"))
    x = torch.stack([ds[i][0] for i in range(min(2, len(ds)))])
    check_logits(source, x, ds.info.num_classes)
    return source.model, ds


def evaluate_model(model: torch.nn.Module, ds: PreparedDataset, batch_size: int = 64,
                   device: str | torch.device = "cpu", workers: int = 0) -> EvalResult:
    start = time.perf_counter()
    device = torch.device(device)
    model = model.to(device).eval()
    cm: torch.Tensor | None = None  # sized by the segmenter's channels (K+1, or C+1 for object labels)
    correct = seen = 0
    with torch.no_grad():
        loader = DataLoader(ds, batch_size=batch_size, **loader_options(workers, device))
        for x, masks, y, _ in track(loader, f"evaluate {ds.split}"):
            logits, seg = model(x.to(device), return_seg=True)
            correct += (logits.argmax(1).cpu() == y).sum().item()
            seen += len(y)
            if seg is not None:
                batch_cm = confusion_matrix(seg.argmax(1).cpu(), masks, seg.shape[1])
                cm = batch_cm if cm is None else cm + batch_cm
    if cm is None:
        return EvalResult(seen, correct / seen, None, None, time.perf_counter() - start)
    return EvalResult(seen, correct / seen, pixel_accuracy(cm), mean_iou(cm), time.perf_counter() - start,
                      foreground_pixel_accuracy(cm))


def check_eval_options(batch_size: int, device: str, image_size: int | None, workers: int | str) -> None:
    """Refuse impossible options before any work, naming the option (they would otherwise fail deep in torch)."""
    check_fields(EvaluateConfig(batch_size=batch_size, workers=parse_workers(workers, "--workers")))
    if image_size is not None and (image_size < 16 or image_size % 16):
        raise PartcliError(f"--image-size {image_size}: must be a multiple of 16 (the segmenter's output stride)")
    pick_device(device)


def evaluate_checkpoint(ckpt: str | Path | None, data: str | Path, split: str = "test", out: str | Path | None = None,
                        batch_size: int = 64, device: str = "auto", image_size: int | None = None,
                        workers: int | str = "auto", model: str | Path | torch.nn.Module | None = None) -> EvalResult:
    """Python API of ``partcli evaluate``; appends a row to ``out`` when given. The model is the checkpoint
    ``ckpt`` or ``model`` (``--model``: FILE.py:FUNCTION, a .pt2 or TorchScript file, or a module).

    ``device`` auto: CUDA when available; ``workers`` auto: a few per GPU, none on the CPU (``partcli.runtime``).
    """
    check_eval_options(batch_size, device, image_size, workers)
    if out is not None:  # before the model is loaded; its folder is made only when the row is written
        check_results_file(out, EVALUATE_COLUMNS)
    source = open_model(ckpt, model)
    model, ds = load_for_dataset(source, data, split, image_size)
    chosen = pick_device(device)
    n_workers = resolve_workers(parse_workers(workers, "--workers"), chosen)
    result = evaluate_model(model, ds, batch_size, chosen, n_workers)
    info("evaluated on " + describe_runtime(device, chosen, workers, n_workers))
    result.row = {"checkpoint": source.name, "dataset": str(data), "split": split, "suite": "clean",
                  "attack": "none", "eps": 0.0, "n": result.n, "clean_acc": result.clean_acc, "adv_acc": None,
                  "clean_pixel_acc": result.pixel_acc, "adv_pixel_acc": None, "seconds": result.seconds,
                  "fg_pixel_acc": result.fg_pixel_acc, "miou": result.miou}
    if out is not None:
        append_results(out, [result.row], EVALUATE_COLUMNS)
    return result
