"""The training loop behind ``partcli pretrain`` and ``partcli train``: writes and resumes a run folder.

Reproducibility: every epoch starts from RNG seeds derived from (seed, epoch) and builds its data order
and augmentation from them, so a run resumed after epoch k replays epochs k+1.. exactly as an
uninterrupted run would (bit-identical weights on the CPU).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from partcli.attacks.pgd import craft_adversarial
from partcli.checkpoint import load_checkpoint, load_weights, save_checkpoint
from partcli.config import write_config
from partcli.data.contract import DatasetInfo, prepare_output_dir, stratified_assign
from partcli.data.dataset import PreparedDataset, eval_transform, train_transform
from partcli.data.seg_labels import seg_channels, with_relabel
from partcli.errors import PartcliError, writing
from partcli.evaluate.seg_metrics import confusion_matrix, foreground_pixel_accuracy, mean_iou, pixel_accuracy
from partcli.models.registry import ModelConfig, build_model
from partcli.progress import info, track, warn
from partcli.train.config import ADV_MODES, AMP_MODES, OPTIMIZERS, SEG_LABELS, SEG_LOSS_NORMS, TrainConfig
from partcli.train.distributed import DistInfo, all_sum, all_sum_tensor, broadcast_buffers, init_distributed
from partcli.train.losses import SegLossFn, centroid_loss, seg_loss
from partcli.train.optim import build_optimizer, build_scheduler
from partcli.train.rng import rng_state, seed_everything, set_rng_state
from partcli.train.run_files import (_append_metrics, _remove_run_files, restore_run_files, resume_point,
                                     selection_metric, with_absolute_paths)
from partcli.train.step import training_loss
from partcli.version import __version__


def validate_config(cfg: TrainConfig) -> None:
    """Refuse impossible options up front, naming the option."""
    for name, value in dataclasses.asdict(cfg).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise PartcliError(f"--{name.replace('_', '-')} {value}: must be a finite number")
    checks = [
        (cfg.adv in ADV_MODES, f"--adv {cfg.adv!r}: expected one of {', '.join(ADV_MODES)}"),
        (cfg.amp in AMP_MODES, f"--amp {cfg.amp!r}: expected one of {', '.join(AMP_MODES)}"),
        (cfg.seg_labels in SEG_LABELS, f"--seg-labels {cfg.seg_labels!r}: expected one of {', '.join(SEG_LABELS)}"),
        (cfg.optim in OPTIMIZERS, f"--optim {cfg.optim!r}: expected one of {', '.join(OPTIMIZERS)}"),
        (cfg.seg_loss_norm in SEG_LOSS_NORMS,
         f"--seg-loss-norm {cfg.seg_loss_norm!r}: expected one of {', '.join(SEG_LOSS_NORMS)}"),
        (cfg.device in ("auto", "cpu", "cuda"), f"--device {cfg.device!r}: expected auto, cpu or cuda"),
        (cfg.epochs >= 1, "--epochs must be at least 1"),
        (0 <= cfg.warmup_epochs < cfg.epochs, "--warmup-epochs must lie in [0, --epochs)"),
        (0 <= cfg.seg_only_epochs < cfg.epochs,
         "--seg-only-epochs must lie in [0, --epochs): the last epochs train the classifier too"),
        (cfg.wd >= 0, "--wd must not be negative"),
        (0.0 <= cfg.momentum < 1.0, "--momentum must lie in [0, 1)"),
        (cfg.batch_size >= 1, "--batch-size must be at least 1"),
        (cfg.lr > 0, "--lr must be positive"),
        (cfg.image_size >= 16 and cfg.image_size % 16 == 0, "--image-size must be a multiple of 16 (the segmenter's output stride)"),
        (0.0 <= cfg.cseg <= 1.0, "--cseg must lie in [0, 1]"),
        (0.0 < cfg.seg_frac <= 1.0, "--seg-frac must lie in (0, 1]"),
        (0.0 < cfg.crop_scale <= 1.0, "--crop-scale must lie in (0, 1]"),
        (cfg.eps >= 0 and cfg.step_size >= 0 and cfg.steps >= 0, "--eps, --step-size and --steps must not be negative"),
        (cfg.eps <= 1 and cfg.step_size <= 1,
         "--eps and --step-size are on [0, 1] pixels: give at most 1 (e.g. 8/255, not 8)"),
        (cfg.beta >= 0, "--beta (TRADES) must not be negative"),
        (cfg.workers >= 0, "--workers must not be negative"),
    ]
    for ok, message in checks:
        if not ok:
            raise PartcliError(message)
    if cfg.arch == "resnet" and cfg.seg_only_epochs:
        raise PartcliError("--seg-only-epochs: the resnet baseline has no segmenter; leave it at 0")
    if cfg.arch == "resnet" and cfg.seg_labels != "part":
        raise PartcliError(f"--seg-labels {cfg.seg_labels}: the resnet baseline uses no segmentation labels; "
                           "choose a part model with --arch or leave --seg-labels at part")


def pick_device(requested: str, dist_info: DistInfo) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise PartcliError("--device cuda: no CUDA device is available")
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)  # NCCL collectives run on the current device: one GPU per rank
        return device
    return torch.device("cpu")


def autocast_factory(amp: str, device: torch.device):
    """A callable returning the autocast context for forward passes (attacks included): same precision."""
    if amp == "off" or device.type != "cuda":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return lambda: torch.autocast("cuda", dtype=dtype)


def model_config_for(cfg: TrainConfig, data: DatasetInfo) -> ModelConfig:
    """The model for a dataset; with ``--seg-labels object`` the segmenter predicts one channel per class."""
    num_parts, part_to_class = seg_channels(cfg.seg_labels, data.num_classes, data.part_to_class())
    return ModelConfig(arch=cfg.arch, backbone=cfg.backbone, num_classes=data.num_classes, num_parts=num_parts,
                       part_to_class=part_to_class, pool=cfg.pool, drop_background=cfg.drop_background,
                       concat_input=cfg.concat_input)


def seg_loss_for(cfg: TrainConfig, model_cfg: ModelConfig) -> SegLossFn:
    """The segmentation term of the loss: Eq. 7 on pixel labels, Eqs. 12–13 on centroid labels."""
    if cfg.seg_labels == "centroid":
        return functools.partial(centroid_loss, part_to_class=model_cfg.part_to_class,
                                 num_classes=model_cfg.num_classes, norm=cfg.seg_loss_norm)
    return functools.partial(seg_loss, norm=cfg.seg_loss_norm)


def split_transform(cfg: TrainConfig, data: DatasetInfo, train: bool):
    """The augmentation of a split, preceded by the ``--seg-labels`` mask transform (on the full-size mask)."""
    transform = train_transform(cfg.image_size, cfg.crop_scale) if train else eval_transform(cfg.image_size)
    return with_relabel(cfg.seg_labels, data.part_to_class(), transform)


def seg_label_mask_indices(train: PreparedDataset, frac: float, seed: int) -> set[int]:
    """Indices of training samples whose part mask is withheld: a stratified, seeded 1 − frac (§5.3)."""
    if frac >= 1.0:
        return set()
    groups = stratified_assign(train.labels, {"keep": frac, "drop": 1.0 - frac}, seed)
    return {i for i, g in enumerate(groups) if g == "drop"}


class Trainer:
    """Owns the model, optimiser and data of one run; ``fit()`` trains to the last epoch."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, overwrite: bool = False):
        self.dist = init_distributed("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
        self.out = Path(cfg.out)
        state = None
        if resume:
            state, cfg = resume_point(cfg)  # the stored configuration; the run folder or its dataset may have moved
            validate_config(cfg)
        else:
            validate_config(cfg)
            cfg = with_absolute_paths(cfg)
            if self.dist.is_main:
                prepare_output_dir(self.out, overwrite)
        self.cfg = cfg
        self.device = pick_device(cfg.device, self.dist)
        if cfg.device == "cpu" and cfg.amp != "off":
            warn("--amp applies on CUDA only; training in float32 on the CPU")
        self.autocast = autocast_factory(cfg.amp, self.device)
        seed_everything(cfg.seed)

        self.train_set = PreparedDataset(cfg.data, "train", check_files=False)
        self.data_info = self.train_set.info
        self.train_set.transform = split_transform(cfg, self.data_info, train=True)
        self.train_set.drop_masks = seg_label_mask_indices(self.train_set, cfg.seg_frac, cfg.seed)
        self.train_set.validate_files()  # what the loader will open: withheld masks are never opened, not even headers
        self.val_set = PreparedDataset(cfg.data, "val", split_transform(cfg, self.data_info, train=False),
                                       check_files=False)
        self.val_set.validate_files()  # strict: a missing val mask is refused now, not after the first epoch
        self.model_cfg = model_config_for(cfg, self.data_info)
        self.seg_fn = seg_loss_for(cfg, self.model_cfg)
        model = build_model(self.model_cfg, cfg.pretrained if state is None else None)
        if cfg.init and state is None:
            self._load_init(model, cfg.init)
        model.to(self.device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.net: nn.Module = model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(model, device_ids=ids)

        self.optimizer = build_optimizer(model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg, max(1, len(self._train_loader(1))))
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16" and self.device.type == "cuda")
        self.epoch = 0
        self.best_metric = -1.0
        self.metrics: list[dict[str, Any]] = []  # the rows of metrics.csv so far; every checkpoint holds them
        if state is not None:
            self._restore(state)

    # -- set-up helpers -------------------------------------------------------------------------------
    def _load_init(self, model: nn.Module, path: str) -> None:
        """Start from another run's weights (the paper pretrains clean, then trains adversarially)."""
        state = load_checkpoint(path)
        init_cfg = ModelConfig.from_dict(state["config"]["model"])
        if (init_cfg.arch, init_cfg.backbone, init_cfg.num_classes, init_cfg.num_parts) != (
                self.model_cfg.arch, self.model_cfg.backbone, self.model_cfg.num_classes, self.model_cfg.num_parts):
            raise PartcliError(
                f"--init {path}: a {init_cfg.arch}/{init_cfg.backbone} model with {init_cfg.num_classes} classes and "
                f"{init_cfg.num_parts} parts does not fit --arch {self.cfg.arch} --backbone {self.cfg.backbone} "
                f"--seg-labels {self.cfg.seg_labels} on {self.cfg.data} ({self.model_cfg.num_classes} classes, "
                f"{self.model_cfg.num_parts} segmenter parts); pretrain with the same options")
        load_weights(model, state["model"], f"--init {path}")

    def _restore(self, state: dict[str, Any]) -> None:
        load_weights(self.model, state["model"], self.out / "checkpoints" / "last.pt")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.best_metric = float(state["best_metric"])
        set_rng_state(state["rng"])
        if self.dist.is_main:
            with writing(self.out):
                self.metrics = restore_run_files(self.out, state, self.cfg)
        info(f"resuming {self.out} after epoch {self.epoch}")

    def _epoch_seed(self, epoch: int) -> int:
        """Seed of one epoch's data order, augmentation and attack noise; ranks draw different noise."""
        return self.cfg.seed * 1_000_003 + epoch + 7_919 * self.dist.rank

    def _train_loader(self, epoch: int) -> DataLoader:
        generator = torch.Generator().manual_seed(self._epoch_seed(epoch))
        sampler = None
        if self.dist.enabled:
            sampler = DistributedSampler(self.train_set, self.dist.world_size, self.dist.rank, shuffle=True,
                                         seed=self.cfg.seed, drop_last=True)
            sampler.set_epoch(epoch)
        return DataLoader(self.train_set, batch_size=self.cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                          num_workers=self.cfg.workers, generator=generator, drop_last=len(self.train_set) > self.cfg.batch_size,
                          pin_memory=self.device.type == "cuda")

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.cfg.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    # -- training -------------------------------------------------------------------------------------
    def fit(self) -> Path:
        fresh = self.epoch == 0  # not resumed from a checkpoint
        if self.dist.is_main:
            with writing(self.out):
                if fresh:  # --overwrite: no stale metrics rows or checkpoints of the run this one replaces
                    _remove_run_files(self.out)
                (self.out / "checkpoints").mkdir(parents=True, exist_ok=True)
                write_config(self.out / "config.yaml", self.cfg, {"partcli_version": __version__})
        try:
            self._fit_epochs()
        except BaseException:
            if self.dist.is_main and fresh and not (self.out / "checkpoints" / "last.pt").exists():
                with contextlib.suppress(OSError):  # e.g. a read-only file system: the first error is the one to show
                    _remove_run_files(self.out)  # nothing resumable was written: leave no half-written run folder
            raise
        return self.out

    def _fit_epochs(self) -> None:
        for epoch in range(self.epoch + 1, self.cfg.epochs + 1):
            start = time.perf_counter()
            seed_everything(self._epoch_seed(epoch))
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, train_acc = self._train_epoch(epoch)
            broadcast_buffers(self.model, self.dist)
            val = self.validate()
            row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc, **val,
                   "seconds": time.perf_counter() - start}
            metric = selection_metric(row, self.cfg)
            self.epoch = epoch
            if self.dist.is_main:
                improved = metric > self.best_metric
                self.best_metric = max(self.best_metric, metric)
                self.metrics.append(row)
                self._save_epoch(row, improved)
                info(_describe(row))

    def _save_epoch(self, row: dict[str, Any], improved: bool) -> None:
        """best.pt, then last.pt, then the metrics row: each kill point leaves what a resume repairs (run_files)."""
        state = self._state()
        with writing(self.out):
            if improved:
                save_checkpoint(self.out / "checkpoints" / "best.pt", state)
            save_checkpoint(self.out / "checkpoints" / "last.pt", state)
            _append_metrics(self.out / "metrics.csv", row)

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        self.net.train()
        total_loss = correct = seen = 0.0
        # --seg-only-epochs: a segmenter-first stage (clean inputs, segmentation loss only), then joint training
        step_cfg = dataclasses.replace(self.cfg, cseg=1.0, adv="none") if epoch <= self.cfg.seg_only_epochs else self.cfg
        for step, (x, masks, y, _) in enumerate(track(self._train_loader(epoch), f"epoch {epoch}/{self.cfg.epochs}"), 1):
            x, masks, y = self._to_device(x), masks.to(self.device), y.to(self.device)
            loss, logits = training_loss(self.net, self.model, x, y, masks, step_cfg, self.autocast, self.seg_fn)
            self._stop_unless_finite(loss, epoch, step)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            total_loss += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        total_loss, correct, seen = all_sum([total_loss, correct, seen], self.dist, self._reduce_device())
        return total_loss / max(seen, 1), correct / max(seen, 1)

    def _stop_unless_finite(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        """A NaN or infinite loss ends the run before it reaches the weights; the last checkpoint stays good."""
        if torch.isfinite(loss).all():
            return
        kept = (f"{self.out / 'checkpoints' / 'last.pt'} (epoch {self.epoch}) is kept" if self.epoch
                else "no checkpoint had been written")
        raise PartcliError(f"epoch {epoch}, step {step}: the training loss is {loss.item()} (not finite); training "
                           f"stopped and {kept}; lower --lr, or check the data")

    def _reduce_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def validate(self) -> dict[str, float | None]:
        """Clean accuracy, PGD accuracy (adversarial runs, §3.5.2) and pixel accuracy, summed over ranks.

        Pixel accuracy compares the segmenter with the masks it is trained on (part, object or box masks);
        it is left empty for baselines and for centroid labels (no pixel-level target).
        """
        model = self.model
        model.eval()
        shard = Subset(self.val_set, list(range(self.dist.rank, len(self.val_set), self.dist.world_size)))
        loader = DataLoader(shard, batch_size=self.cfg.batch_size, num_workers=self.cfg.workers)
        k1 = self.model_cfg.num_parts + 1
        cm = torch.zeros(k1, k1, dtype=torch.int64)
        clean = adv = seen = 0.0
        steps = self.cfg.val_steps if self.cfg.val_steps is not None else self.cfg.steps
        for x, masks, y, _ in track(loader, "validate"):
            x, masks, y = self._to_device(x), masks.to(self.device), y.to(self.device)
            with torch.no_grad(), self.autocast():
                logits, seg = model(x, return_seg=True)
            clean += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            if seg is not None and self.cfg.seg_labels != "centroid":
                cm += confusion_matrix(seg.argmax(1), masks, k1)
            if self.cfg.adv != "none":
                x_adv = craft_adversarial(model, x, y, self.cfg.eps, self.cfg.step_size, steps, autocast=self.autocast)
                with torch.no_grad(), self.autocast():
                    adv += (model(x_adv).argmax(1) == y).sum().item()
        clean, adv, seen = all_sum([clean, adv, seen], self.dist, self._reduce_device())
        cm = all_sum_tensor(cm, self.dist, self._reduce_device())
        return {
            "val_clean_acc": clean / seen,
            "val_adv_acc": adv / seen if self.cfg.adv != "none" else None,
            "val_pixel_acc": pixel_accuracy(cm),
            "val_fg_pixel_acc": foreground_pixel_accuracy(cm),
            "val_miou": mean_iou(cm),
        }

    def _state(self) -> dict[str, Any]:
        return {
            "config": {
                "model": self.model_cfg.to_dict(),
                "train": dataclasses.asdict(self.cfg),
                "dataset": {"name": self.data_info.name, "classes": self.data_info.classes,
                            "parts": [{"name": p.name, "class": p.cls} for p in self.data_info.parts],
                            "image_size": self.cfg.image_size, "seg_labels": self.cfg.seg_labels},
            },
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "epoch": self.epoch,
            "rng": rng_state(),
            "best_metric": self.best_metric,
            "metrics": list(self.metrics),
        }


def run_training(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> Path:
    """Python API of ``partcli pretrain`` / ``partcli train``: train and return the run folder."""
    return Trainer(cfg, resume=resume, overwrite=overwrite).fit()


def _describe(row: dict[str, Any]) -> str:
    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.4f}", f"train acc {row['train_acc']:.3f}",
             f"val acc {row['val_clean_acc']:.3f}"]
    if row.get("val_adv_acc") is not None:
        parts.append(f"val adv acc {row['val_adv_acc']:.3f}")
    if row.get("val_pixel_acc") is not None:
        parts.append(f"val pixel acc {row['val_pixel_acc']:.3f} (foreground {row['val_fg_pixel_acc'] or 0:.3f}, "
                     f"mIoU {row['val_miou']:.3f})")
    return ", ".join(parts) + f" ({row['seconds']:.1f} s)"
