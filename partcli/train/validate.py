"""Checks of a training configuration before any work: one line naming the option.

Radii follow ``--norm``: an ℓ∞ budget and step are at most 1 (a whole pixel range; "8/255, not 8"); an ℓ2 one at
most √3·image_size, the diagonal of the [0, 1] image cube, beyond which the ball holds every image. ℓ2 training
needs its own ``--eps`` and ``--step-size``: the defaults 8/255 and 2/255 are ℓ∞ values (a near-zero ℓ2 budget), so
an adversarial ``--norm L2`` run that keeps them is refused (a value equal to the default counts as not given, as in
``run_training``'s ``given``).
"""
from __future__ import annotations

import math

from partcli.attacks.config import BALL_CROSSING
from partcli.config import check_fields
from partcli.errors import PartcliError
from partcli.tracking import check_loggers_installed
from partcli.train.config import TrainConfig


def validate_config(cfg: TrainConfig) -> None:
    """Refuse impossible options up front, naming the option: what each field declares (choices, finite numbers,
    ranges: ``check_fields``), then the rules that relate several options or that a range cannot say."""
    check_fields(cfg)
    diagonal = math.sqrt(3) * cfg.image_size
    checks = [
        (0 <= cfg.warmup_epochs < cfg.epochs, "--warmup-epochs must lie in [0, --epochs)"),
        (0 <= cfg.seg_only_epochs < cfg.epochs,
         "--seg-only-epochs must lie in [0, --epochs): the last epochs train the classifier too"),
        (cfg.image_size % 16 == 0, f"--image-size {cfg.image_size}: must be a multiple of 16 (the segmenter's output "
         "stride)"),
        (cfg.norm != "Linf" or (cfg.eps <= 1 and cfg.step_size <= 1),
         "--eps and --step-size are ℓ∞ sizes on [0, 1] pixels: give at most 1 (e.g. 8/255, not 8), or --norm L2 "
         "for an ℓ2 budget"),
        (cfg.norm != "L2" or (cfg.eps <= diagonal and cfg.step_size <= diagonal),
         f"--norm L2: --eps and --step-size must be at most {diagonal:.4g}, the ℓ2 diagonal of a "
         f"3×{cfg.image_size}×{cfg.image_size} image in [0, 1]"),
        (cfg.output_stride in (8, 16), f"--output-stride {cfg.output_stride}: give 8 or 16"),
        (cfg.val_step_size is None or 0 <= cfg.val_step_size <= (1 if cfg.norm == "Linf" else diagonal),
         "--val-step-size is on [0, 1] pixels: give a value in [0, 1] (e.g. 0.002)" if cfg.norm == "Linf" else
         f"--val-step-size: give a value in [0, {diagonal:.4g}] (the ℓ2 diagonal of the image)"),
        (cfg.workers == "auto" or (isinstance(cfg.workers, int) and cfg.workers >= 0),
         f"--workers {cfg.workers!r}: expected auto or a number of worker processes (0 or more)"),
    ]
    for ok, message in checks:
        if not ok:
            raise PartcliError(message)
    if cfg.norm == "L2" and cfg.adv != "none":
        _require_l2_budget(cfg)
    if cfg.arch == "resnet" and cfg.seg_only_epochs:
        raise PartcliError("--seg-only-epochs: the resnet baseline has no segmenter; leave it at 0")
    if cfg.arch == "resnet" and cfg.seg_labels != "part":
        raise PartcliError(f"--seg-labels {cfg.seg_labels}: the resnet baseline uses no segmentation labels; "
                           "choose a part model with --arch or leave --seg-labels at part")
    check_loggers_installed(cfg.logger)


def _require_l2_budget(cfg: TrainConfig) -> None:
    """Refuse ℓ2 attacks with the ℓ∞ defaults of --eps or --step-size (see the module docstring)."""
    defaults = TrainConfig.__dataclass_fields__
    if cfg.eps == defaults["eps"].default:
        raise PartcliError("--norm L2: give --eps, e.g. 1.0 (the ℓ∞ default 8/255 is not an ℓ2 radius)")
    if cfg.step_size == defaults["step_size"].default:
        raise PartcliError(f"--norm L2: give --step-size, e.g. {BALL_CROSSING * cfg.eps / max(cfg.steps, 1):.3g} "
                           "(2.5·eps/steps; the default 2/255 is an ℓ∞ step)")


def from_scratch_hint(cfg: TrainConfig) -> str | None:
    """Advice for a part model trained jointly from a from-scratch segmenter (measured in issue 10).

    At step 0 the classification loss's gradient into such a segmenter is ~10x the segmentation loss's; joint
    training then learns masks that are class-coloured blobs (demo: mIoU 11 % vs 35 % after a segmenter-first stage).
    """
    if cfg.arch == "resnet" or cfg.seg_only_epochs or cfg.pretrained or cfg.init or cfg.cseg in (0.0, 1.0):
        return None
    return ("the segmenter starts from scratch and trains jointly from step 0, where the classification loss "
            "dominates its gradient and its masks stay blobs; --seg-only-epochs N (about half of --epochs) trains "
            "it first")


def random_backbone_hint(cfg: TrainConfig, dataset: str) -> str | None:
    """A reminder that the paper's models start from ImageNet weights, for a real dataset trained from scratch."""
    if cfg.pretrained or cfg.init or dataset == "synthetic":
        return None
    return ("the backbone starts from random weights; the paper's models start from ImageNet weights "
            "(--pretrained imagenet, as the recipes in examples/paper/ do)")
