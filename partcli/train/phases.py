"""The phases of a training run: with ``--seg-only-epochs N``, epochs 1..N train the segmenter alone (clean inputs,
segmentation loss only), the later epochs train segmenter and classifier jointly as configured.

The training loop asks which configuration an epoch's steps use; best-checkpoint selection asks whether an epoch
trained the classifier at all (a seg-only epoch's classifier is never the best).
"""
from __future__ import annotations

import dataclasses
import enum

from partcli.train.config import TrainConfig


class Phase(enum.Enum):
    SEG_ONLY = "seg-only"
    JOINT = "joint"

    @property
    def trains_classifier(self) -> bool:
        return self is Phase.JOINT


def phase_of(cfg: TrainConfig, epoch: int) -> Phase:
    """The phase of ``epoch`` (counted from 1)."""
    return Phase.SEG_ONLY if epoch <= cfg.seg_only_epochs else Phase.JOINT


def step_config(cfg: TrainConfig, phase: Phase) -> TrainConfig:
    """The configuration a training step of ``phase`` uses: a seg-only step has segmentation loss weight 1 (the
    classification term drops out) and no adversary; a joint step uses the run's own."""
    return dataclasses.replace(cfg, cseg=1.0, adv="none") if phase is Phase.SEG_ONLY else cfg
