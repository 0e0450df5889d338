"""Train, resume or reuse the part segmenter that produces the pseudo masks (App. D.6, first step).

The segmenter is an ordinary training run (``run_training``) with ``cseg = 1`` (the loss is the segmentation loss
alone, Eq. 5 with c = 1) on the labelled subset of the parent's training split (``subset`` module): the samples
whose mask is withheld would add exactly nothing to that loss, so they are not trained on. The ``pixel`` head has no parameters (App. C.2),
so the checkpoint holds nothing untrained and the run's validation accuracy is the class read off the masks.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Callable

from partcli.checkpoint import Checkpoint
from partcli.config import names_library_weights
from partcli.errors import PartcliError
from partcli.progress import info
from partcli.pseudolabel.config import PseudoLabelConfig
from partcli.train.config import TrainConfig
from partcli.train.loop import run_training

SEGMENTER_ARCH = "pixel"
# Settings that do not change what a run computes; a run differing only in these is reused. The training data is
# compared by the subset's name (a digest of its rows, recorded in the checkpoint), not by where it was written.
UNCOMPARED = ("out", "device", "workers", "data", "logger")


def segmenter_config(cfg: PseudoLabelConfig, run_dir: Path, data_dir: Path) -> TrainConfig:
    """The segmenter's training run on the labelled subset at ``data_dir``; paths are absolute."""
    return TrainConfig(
        data=str(data_dir.resolve()), out=str(run_dir), arch=SEGMENTER_ARCH, backbone=cfg.backbone,
        pretrained=cfg.pretrained if not cfg.pretrained or names_library_weights(cfg.pretrained)
        else str(Path(cfg.pretrained).resolve()), epochs=cfg.epochs,
        batch_size=cfg.batch_size, lr=cfg.lr, image_size=cfg.image_size, workers=cfg.workers, seed=cfg.seed,
        device=cfg.device, cseg=1.0, adv="none", seg_frac=1.0,  # every subset sample keeps its mask
        seg_loss_norm="labelled",  # only the masked samples teach a segmenter: their loss keeps its full weight
        logger=list(cfg.logger),
    )


def work_dir_for(out: Path) -> Path:
    """Where the segmenter trains until the new dataset is written: ``<out>.segmenter`` beside ``out``."""
    return out.parent / f"{out.name}.segmenter"


def finished_segmenter(tcfg: TrainConfig, work: Path, data_name: str, write_data: Callable[[], None],
                       previous: Path | None = None, overwrite: bool = False) -> Path:
    """Return ``work`` holding a finished run of ``tcfg`` on the training data named ``data_name``: reused if
    there, resumed if cut short, else trained; ``write_data`` writes that data (at ``tcfg.data``) first.

    ``previous`` (the ``segmenter/`` folder of the dataset being overwritten) is copied to ``work`` when it
    holds a finished run with the same settings, so re-writing a dataset does not retrain its segmenter.
    A run with other settings at ``work`` is an error unless ``overwrite``, which retrains.
    """
    if _last_state(work) is None and previous is not None:
        state = _last_state(previous)
        if state is not None and not _differences(state, tcfg, data_name) and state.epoch >= tcfg.epochs:
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(previous, work)
    state = _last_state(work)
    diff = "" if state is None else _differences(state, tcfg, data_name)
    if diff and not overwrite:
        raise PartcliError(f"{work}: holds a segmenter run with other settings ({diff}); delete it, or pass "
                           "--overwrite to retrain")
    if state is None or diff:
        shutil.rmtree(work, ignore_errors=True)  # a run that died before its first checkpoint, or --overwrite
        write_data()
        info(f"training the part segmenter in {work}")
        return run_training(tcfg)
    if state.epoch < tcfg.epochs:
        write_data()
        return run_training(tcfg, resume=True)
    info(f"reusing the finished segmenter run {work}")
    return work


def _last_state(run: Path) -> Checkpoint | None:
    last = run / "checkpoints" / "last.pt"
    return Checkpoint.load(last) if last.is_file() else None


def _differences(state: Checkpoint, tcfg: TrainConfig, data_name: str) -> str:
    """'key: old -> new' for every computation-relevant setting in which the checkpoint's run differs."""
    # a setting added after the checkpoint was written (e.g. ``replanned``) counts as its default there
    old = {**dataclasses.asdict(TrainConfig()), **state.train}
    new = dataclasses.asdict(tcfg)
    diff = [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in new if k not in UNCOMPARED and old.get(k) != new[k]]
    old_name = state.dataset.name
    if old_name != data_name:
        diff.insert(0, f"training data: {old_name!r} -> {data_name!r}")
    return ", ".join(diff)
