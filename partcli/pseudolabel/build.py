"""Write the pseudo-labelled dataset: parent's images by reference, kept GT masks, predicted masks.

Layout of ``--out`` (a prepared dataset, docs/formats.md):

- ``train.csv``/``val.csv``/``test.csv``: the parent's rows in the parent's order (then the ``--unlabelled``
  images). Image paths point at the parent's (and the unlabelled folder's) files relative to ``--out``
  (``../parent/images/...``), so nothing is copied and the folders keep working when moved together.
- ``masks/``: the pseudo masks (``mask_source: pseudo``; only background and the parts of the image's own
  class, App. D.6, recorded as ``source.pseudo_masks`` in ``dataset.yaml``) and copies of the ground-truth masks
  that are kept (train ``gt`` rows, val and test), so the dataset never reads a mask from its parent after it is
  written.
- ``segmenter/``: the segmenter's run folder (config.yaml, metrics.csv, checkpoints/); its ``last.pt`` made
  the pseudo masks (with c_seg = 1 the run's "best" is picked by a classification metric, not by masks).

The segmenter trains in ``<out>.segmenter/`` beside ``--out`` (so a cut-short run can be resumed), on the labelled
training subset written to ``<out>.segmenter-data/`` (CSVs only; removed once the dataset is written), and is moved
into the dataset just before the dataset folder is renamed into place. A finished run found there, or in the
``segmenter/`` of an ``--out`` being overwritten, with the same settings, is reused instead of retrained.
Training masks that the fraction withholds are never opened, by the segmenter's training or by this module.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from partcli.checkpoint import load_model
from partcli.config import check_fields
from partcli.data.contract import DatasetInfo, Sample, load_image, load_mask
from partcli.data.writer import DatasetWriter, prepare_output_dir
from partcli.data.dataset import PreparedDataset, eval_transform
from partcli.errors import PartcliError
from partcli.evaluate.evaluate import evaluate_model
from partcli.progress import track
from partcli.pseudolabel.config import PseudoLabelConfig
from partcli.pseudolabel.predict import OWN_CLASS_PARTS, native_resolution_masks
from partcli.pseudolabel.segmenter import finished_segmenter, segmenter_config, work_dir_for
from partcli.pseudolabel.subset import subset_dir_for, subset_name, write_labelled_subset
from partcli.pseudolabel.unlabelled import read_unlabelled
from partcli.runtime import pick_device, resolve_workers
from partcli.train.builders import seg_label_mask_indices
from partcli.train.validate import validate_config

SEGMENTER_DIR = "segmenter"
SEGMENTER_CHECKPOINT = f"{SEGMENTER_DIR}/checkpoints/last.pt"


@dataclass
class PseudoLabelResult:
    out: Path
    info: DatasetInfo
    n_gt: int
    n_pseudo: int
    val_pixel_acc: float | None
    val_miou: float | None
    segmenter_checkpoint: Path


@dataclass
class _Row:
    """One training row of the new dataset: where its image lives and whether its mask is kept or predicted."""

    root: Path
    sample: Sample
    stem: str
    pseudo: bool


def pseudolabel(cfg: PseudoLabelConfig, overwrite: bool = False) -> PseudoLabelResult:
    """Python API of ``partcli pseudolabel``: train the segmenter, predict the missing masks, write ``cfg.out``."""
    check_fields(cfg)
    parent, out = Path(cfg.data), prepare_output_dir(cfg.out, overwrite)
    work, subset_dir = work_dir_for(out), subset_dir_for(out)
    tcfg = segmenter_config(cfg, work, subset_dir)
    validate_config(tcfg)
    _check_apart(parent, out, "--data")
    train = PreparedDataset(parent, "train", check_files=False)  # the default check would open withheld masks
    train.drop_masks = seg_label_mask_indices(train, cfg.frac, cfg.seed)
    train.validate_files()  # withheld masks are never opened, not even their headers
    rows = _train_rows(parent, train, train.drop_masks)
    extra: list[_Row] = []
    if cfg.unlabelled:
        _check_apart(Path(cfg.unlabelled), out, "--unlabelled")
        extra = _extra_rows(Path(cfg.unlabelled), read_unlabelled(cfg.unlabelled, train.info.classes))
    rows += extra
    n_gt, n_pseudo = sum(not r.pseudo for r in rows), sum(r.pseudo for r in rows)
    if n_gt == 0:
        raise PartcliError(f"--frac {cfg.frac}: keeps no ground-truth mask of {parent}/train.csv; raise --frac")
    if n_pseudo == 0:
        raise PartcliError(f"--frac {cfg.frac}: every training sample keeps its mask, nothing to pseudo-label; "
                           "lower --frac or give --unlabelled")

    kept = [r.sample for r in rows if not r.pseudo]  # --unlabelled rows are all pseudo
    splits = {split: PreparedDataset(parent, split, check_files=False).samples for split in ("val", "test")}
    subset_source = {"command": "pseudolabel (the segmenter's training data)", "parent": str(parent.resolve()),
                     "frac": cfg.frac, "seed": cfg.seed}
    previous = out / SEGMENTER_DIR
    run = finished_segmenter(tcfg, work, subset_name(train.info, kept),
                             lambda: write_labelled_subset(parent, train.info, splits, kept, subset_dir, subset_source),
                             previous if previous.is_dir() else None, overwrite)
    device = pick_device(cfg.device)
    workers = resolve_workers(cfg.workers, device)
    model = load_model(run / "checkpoints" / "last.pt", device)
    val = evaluate_model(model, PreparedDataset(parent, "val", eval_transform(cfg.image_size)), cfg.batch_size,
                         device, workers)

    final = out.resolve()
    source = {
        "command": "pseudolabel", "parent": _rel(parent, final), "parent_name": train.info.name,
        "frac": cfg.frac, "seed": cfg.seed, "pseudo_masks": OWN_CLASS_PARTS,
        "unlabelled": _rel(Path(cfg.unlabelled), final) if cfg.unlabelled else None,
        "segmenter": {"arch": tcfg.arch, "backbone": cfg.backbone, "pretrained": cfg.pretrained,
                      "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "image_size": cfg.image_size,
                      "train_samples": len(kept)},
    }
    summary = {"pseudolabel": {
        "segmenter_checkpoint": SEGMENTER_CHECKPOINT,
        "segmenter_val": {"n": val.n, "pixel_acc": val.pixel_acc, "miou": val.miou},
        "train_masks": {"gt": n_gt, "pseudo": n_pseudo, "unlabelled": len(extra)},
    }}
    pseudo = [r for r in rows if r.pseudo]
    masks = native_resolution_masks(model, [(r.root, r.sample.image) for r in pseudo],
                                    [r.sample.label for r in pseudo], train.info.part_to_class(), cfg.image_size,
                                    cfg.batch_size, device, workers)
    with DatasetWriter(out, train.info.classes, train.info.parts, f"{train.info.name}-pseudo", overwrite) as writer:
        for split in ("val", "test"):
            samples = PreparedDataset(parent, split).samples
            width = len(str(len(samples)))
            for i, s in enumerate(track(samples, f"copying {split}")):
                _add_kept(writer, split, _Row(parent, s, f"{i:0{width}d}-{Path(s.image).stem}", False), final)
        for r in track(rows, "writing train"):
            if r.pseudo:
                writer.add("train", r.stem, r.sample.label, image_rel=_rel(r.root / r.sample.image, final),
                           mask=next(masks), mask_source="pseudo")
            else:
                _add_kept(writer, "train", r, final)
        written = _finish_with_segmenter(writer, run, source, summary)
    shutil.rmtree(subset_dir, ignore_errors=True)
    return PseudoLabelResult(out, written, n_gt, n_pseudo, val.pixel_acc, val.miou, out / SEGMENTER_CHECKPOINT)


def _finish_with_segmenter(writer: DatasetWriter, run: Path, source: dict[str, Any], extra: dict[str, Any]
                           ) -> DatasetInfo:
    """Move the segmenter run into the dataset, then let the writer rename the dataset into place."""
    assert writer.tmp is not None
    os.replace(run, writer.tmp / SEGMENTER_DIR)
    try:
        return writer.finish(source, extra)
    except BaseException:
        os.replace(writer.tmp / SEGMENTER_DIR, run)  # keep the trained segmenter for the next attempt
        raise


def _train_rows(parent: Path, train: PreparedDataset, withheld: set[int]) -> list[_Row]:
    """The parent's training rows; a mask withheld by the fraction (or absent in the parent) becomes pseudo."""
    width = len(str(len(train)))
    return [_Row(parent, s, f"{i:0{width}d}-{Path(s.image).stem}", i in withheld or not s.mask)
            for i, s in enumerate(train.samples)]


def _extra_rows(root: Path, extra: list[Sample]) -> list[_Row]:
    """The --unlabelled images, all to be pseudo-labelled; 'extra' stems never clash with the parent's."""
    width = len(str(len(extra)))
    return [_Row(root, s, f"extra{i:0{width}d}-{Path(s.image).stem}", True) for i, s in enumerate(extra)]


def _add_kept(writer: DatasetWriter, split: str, row: _Row, final: Path) -> None:
    """Add a sample that keeps its ground truth: its mask is checked against its image and copied."""
    s = row.sample
    size = load_image(row.root, s.image).size
    mask = load_mask(row.root, s.mask, writer.info.num_parts, size) if s.mask else None
    writer.add(split, row.stem, s.label, image_rel=_rel(row.root / s.image, final), mask=mask,
               mask_source=s.mask_source or "gt")


def _rel(path: Path, final: Path) -> str:
    """``path`` relative to the new dataset's final folder, with '/' separators as the CSVs expect."""
    return Path(os.path.relpath(path.resolve(), final)).as_posix()


def _check_apart(folder: Path, out: Path, option: str) -> None:
    """Refuse an --out that is, or contains, an input folder (writing --out would delete it)."""
    src, dst = folder.resolve(), out.resolve()
    if src == dst or dst in src.parents:
        raise PartcliError(f"--out {out}: is or contains {option} {folder}; choose an output folder outside it")

