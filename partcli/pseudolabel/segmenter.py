"""Train, resume or reuse the part segmenter that produces the pseudo masks (App. D.6, first step).

The segmenter is an ordinary training run (``run_training``) on the parent dataset with ``seg_frac = frac`` and
``cseg = 1``: the loss is the segmentation loss alone (Eq. 5 with c = 1), and the samples whose mask is withheld
carry no labelled pixel, so they add exactly nothing to it. The ``pixel`` head has no parameters (App. C.2),
so the checkpoint holds nothing untrained and the run's validation accuracy is the class read off the masks.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from partcli.checkpoint import load_checkpoint
from partcli.errors import PartcliError
from partcli.progress import info
from partcli.pseudolabel.config import PseudoLabelConfig
from partcli.train.config import TrainConfig
from partcli.train.loop import run_training

SEGMENTER_ARCH = "pixel"
# Settings that do not change what a run computes; a run differing only in these is reused.
UNCOMPARED = ("out", "device", "workers")


def segmenter_config(cfg: PseudoLabelConfig, run_dir: Path) -> TrainConfig:
    """The segmenter's training run; input paths are absolute so a rerun from elsewhere compares equal."""
    return TrainConfig(
        data=str(Path(cfg.data).resolve()), out=str(run_dir), arch=SEGMENTER_ARCH, backbone=cfg.backbone,
        pretrained=str(Path(cfg.pretrained).resolve()) if cfg.pretrained else None, epochs=cfg.epochs,
        batch_size=cfg.batch_size, lr=cfg.lr, image_size=cfg.image_size, workers=cfg.workers, seed=cfg.seed,
        device=cfg.device, cseg=1.0, adv="none", seg_frac=cfg.frac,
        seg_loss_norm="labelled",  # only the masked samples teach a segmenter: their loss keeps its full weight
    )


def work_dir_for(out: Path) -> Path:
    """Where the segmenter trains until the new dataset is written: ``<out>.segmenter`` beside ``out``."""
    return out.parent / f"{out.name}.segmenter"


def finished_segmenter(tcfg: TrainConfig, work: Path, previous: Path | None = None, overwrite: bool = False) -> Path:
    """Return ``work`` holding a finished run of ``tcfg``: reused if there, resumed if cut short, else trained.

    ``previous`` (the ``segmenter/`` folder of the dataset being overwritten) is copied to ``work`` when it
    holds a finished run with the same settings, so re-writing a dataset does not retrain its segmenter.
    A run with other settings at ``work`` is an error unless ``overwrite``, which retrains.
    """
    if _last_state(work) is None and previous is not None:
        state = _last_state(previous)
        if state is not None and not _differences(state, tcfg) and state["epoch"] >= tcfg.epochs:
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(previous, work)
    state = _last_state(work)
    if state is None:
        shutil.rmtree(work, ignore_errors=True)  # a run that died before its first checkpoint
        info(f"training the part segmenter in {work}")
        return run_training(tcfg)
    diff = _differences(state, tcfg)
    if diff:
        if not overwrite:
            raise PartcliError(f"{work}: holds a segmenter run with other settings ({diff}); delete it, or pass "
                               "--overwrite to retrain")
        shutil.rmtree(work)
        info(f"training the part segmenter in {work}")
        return run_training(tcfg)
    if state["epoch"] < tcfg.epochs:
        return run_training(tcfg, resume=True)
    info(f"reusing the finished segmenter run {work}")
    return work


def _last_state(run: Path) -> dict[str, Any] | None:
    last = run / "checkpoints" / "last.pt"
    return load_checkpoint(last) if last.is_file() else None


def _differences(state: dict[str, Any], tcfg: TrainConfig) -> str:
    """'key: old -> new' for every computation-relevant setting in which the checkpoint's run differs."""
    # a setting added after the checkpoint was written (e.g. ``replanned``) counts as its default there
    old = {**dataclasses.asdict(TrainConfig()), **state["config"]["train"]}
    new = dataclasses.asdict(tcfg)
    keys = [k for k in new if k not in UNCOMPARED and old.get(k) != new[k]]
    return ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in keys)
