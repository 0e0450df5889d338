"""The training loop behind ``partcli pretrain`` and ``partcli train``: writes and resumes a run folder.

Reproducibility: every epoch starts from RNG seeds derived from (seed, epoch) and builds its data order
and augmentation from them (``train.loader``), so a run resumed after epoch k replays epochs k+1.. exactly as an
uninterrupted run would (bit-identical weights on the CPU), whatever ``--workers`` either used.

Around the loop, in their own modules: the device, AMP and worker choice (``partcli.runtime``), option checks
(``train.validate``), what the configuration builds for the dataset (``train.builders``), the seg-only and joint
phases (``train.phases``), the run folder's files and metrics CSV (``train.run_files``), the ``--logger`` experiment
trackers (``partcli.tracking``, rank 0 only).
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from partcli.attacks.pgd import craft_adversarial
from partcli.checkpoint import Checkpoint, DatasetDescription, load_weights
from partcli.config import write_config
from partcli.data.writer import prepare_output_dir
from partcli.data.dataset import PreparedDataset, upsampling_note
from partcli.data.label_kinds import label_kind
from partcli.errors import PartcliError, writing
from partcli.evaluate.seg_metrics import confusion_matrix, foreground_pixel_accuracy, mean_iou, pixel_accuracy
from partcli.files import check_can_create
from partcli.models.registry import build_model_with_weights, unseen_differences
from partcli.progress import RunProgress, info, run_progress, track, warn
from partcli.runtime import autocast_factory, describe_runtime, loader_options, pick_device, resolve_workers
from partcli.tracking import Trackers, check_logger_folders
from partcli.tracking.masks import validation_masks_figure
from partcli.train.builders import model_config_for, seg_label_mask_indices, seg_loss_for, split_transform
from partcli.train.config import TrainConfig
from partcli.train.distributed import (all_sum, all_sum_tensor, broadcast_buffers, init_distributed,
                                       raise_if_any_rank_failed, synchronise_batchnorm)
from partcli.train.loader import EpochSampler, SeededItems
from partcli.train.optim import build_optimizer, build_scheduler, load_scheduler_state
from partcli.train.phases import phase_of, step_config
from partcli.train.rng import rng_state, seed_everything, set_rng_state
from partcli.train.run_files import (METRIC_COLUMNS, VALIDATION_COLUMNS, remove_run_files, describe_epoch,
                                     restore_run_files, resume_point, selection_metric, validates, with_absolute_paths,
                                     write_epoch)
from partcli.train.step import training_loss
from partcli.train.validate import from_scratch_hint, random_backbone_hint, validate_config
from partcli.version import __version__


class Trainer:
    """Owns the model, optimiser and data of one run; ``fit()`` trains to the last epoch.

    ``given``: with ``resume``, the options the user set (see ``run_files.resume_point``).
    """

    def __init__(self, cfg: TrainConfig, resume: bool = False, overwrite: bool = False,
                 given: Iterable[str] | None = None):
        self.dist = init_distributed("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
        self.out = Path(cfg.out)
        self.run_progress = RunProgress(0, lambda status: None)  # fit's, while it runs
        self.trackers = Trackers()  # --logger's, opened by fit on rank 0
        # Under torchrun every rank reaches the first collective (DDP's weight broadcast) or none does: a rank
        # whose set-up fails (rank 0 alone checks --out) would otherwise leave the others waiting for ever.
        failure = None
        try:
            state = self._setup_run(cfg, resume, overwrite, given)
            self._setup_data()
            self._setup_model(state)
        except Exception as exc:  # re-raised on this rank, reported to the others
            failure = exc
        raise_if_any_rank_failed(failure, self.dist)
        if self.dist.is_main:
            info(describe_runtime(self.cfg.device, self.device, self.cfg.workers, self.workers, self.cfg.amp))
            if state is None:
                info(f"weights: {self.weights}")
            hints = [] if state is not None else [from_scratch_hint(self.cfg),
                                                  random_backbone_hint(self.cfg, self.data_info.name)]
            for hint in filter(None, hints):
                info(f"note: {hint}")
        self._setup_optimiser()
        if state is not None:
            self._restore(state)

    # -- set-up steps ---------------------------------------------------------------------------------
    def _setup_run(self, cfg: TrainConfig, resume: bool, overwrite: bool,
                   given: Iterable[str] | None) -> Checkpoint | None:
        """The configuration (stored, for a resumed run), checked; the run folder made ready (rank 0)."""
        state = None
        if resume:
            state, cfg = resume_point(cfg, given)  # the stored configuration; the run folder or dataset may have moved
            validate_config(cfg)
        else:
            validate_config(cfg)
            cfg = with_absolute_paths(cfg)
            if self.dist.is_main:
                prepare_output_dir(self.out, overwrite, dataset=False)  # --overwrite removes only run files
        if self.dist.is_main:  # refused now, before the set-up's info lines (the folder is made by fit)
            check_can_create(self.out)
            check_logger_folders(self.out, cfg.logger)
        self.cfg = cfg
        self.device = pick_device(cfg.device, self.dist.local_rank)
        self.workers = resolve_workers(cfg.workers, self.device)
        if self.device.type == "cpu" and cfg.amp != "off":
            warn("--amp applies on CUDA only; training in float32 on the CPU")
        self.autocast = autocast_factory(cfg.amp, self.device)
        return state

    def _setup_data(self) -> None:
        """The train and val splits, their files checked before the first epoch, and their loaders."""
        cfg = self.cfg
        seed_everything(cfg.seed)
        self.train_set = PreparedDataset(cfg.data, "train", check_files=False)
        self.data_info = self.train_set.info
        self.train_set.transform = split_transform(cfg, self.data_info, train=True)
        self.train_set.drop_masks = seg_label_mask_indices(self.train_set, cfg.seg_frac, cfg.seed)
        self.train_set.validate_files()  # what the loader will open: withheld masks are never opened, not even headers
        self.val_set = PreparedDataset(cfg.data, "val", split_transform(cfg, self.data_info, train=False),
                                       check_files=False)
        self.val_set.validate_files()  # strict: a missing val mask is refused now, not after the first epoch
        note = upsampling_note(self.train_set, cfg.image_size)
        if note and self.dist.is_main:
            info(note + "; --image-size sets the training resolution")
        self.train_loader = self._train_loader()
        shard = Subset(self.val_set, list(range(self.dist.rank, len(self.val_set), self.dist.world_size)))
        self.val_loader = DataLoader(shard, batch_size=cfg.batch_size,
                                     **loader_options(self.workers, self.device, persistent=self.device.type == "cuda"))

    def _setup_model(self, state: Checkpoint | None) -> None:
        """The model (backbone weights, or --init's, unless resumed) on its device; the segmentation loss."""
        cfg = self.cfg
        self.model_cfg = model_config_for(cfg, self.data_info)
        self.seg_fn = seg_loss_for(cfg, self.model_cfg)
        fresh = state is None
        model, loaded = build_model_with_weights(self.model_cfg, cfg.pretrained if fresh and not cfg.init else None)
        self.weights = loaded.description if loaded else "random initialisation"
        if cfg.init and fresh:
            self._load_init(model, cfg.init)
            ignored = f" (--pretrained {cfg.pretrained} not loaded: these replace it)" if cfg.pretrained else ""
            self.weights = f"{cfg.init} (--init){ignored}"
        model.to(self.device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model

    def _setup_optimiser(self) -> None:
        """DDP wrapping (the first collective), optimiser, per-step schedule and loss scaler."""
        if self.cfg.sync_bn:
            self.model = synchronise_batchnorm(self.model, self.dist, self.device)
        self.net: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = build_optimizer(self.model, self.cfg)
        self.scheduler = build_scheduler(self.optimizer, self.cfg, max(1, len(self.train_loader)))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.cfg.amp == "fp16" and self.device.type == "cuda")
        self.epoch = 0
        self.best_metric = -1.0
        self.metrics: list[dict[str, Any]] = []  # the rows of metrics.csv so far; every checkpoint holds them

    # -- set-up helpers -------------------------------------------------------------------------------
    def _load_init(self, model: nn.Module, path: str) -> None:
        """Start from another run's weights (the paper pretrains clean, then trains adversarially)."""
        init = Checkpoint.load(path)
        init_cfg = init.model_config
        for name in unseen_differences(init_cfg, self.model_cfg):
            flag, theirs = "--" + name.replace("_", "-"), getattr(init_cfg, name)
            raise PartcliError(f"--init {path}: a {init_cfg.arch} model with {flag} {theirs}, which computes other "
                               f"features than {flag} {getattr(self.model_cfg, name)} with the same weights; give "
                               f"{flag} {theirs}")
        if (init_cfg.arch, init_cfg.backbone, init_cfg.num_classes, init_cfg.num_parts) != (
                self.model_cfg.arch, self.model_cfg.backbone, self.model_cfg.num_classes, self.model_cfg.num_parts):
            raise PartcliError(
                f"--init {path}: a {init_cfg.arch}/{init_cfg.backbone} model with {init_cfg.num_classes} classes and "
                f"{init_cfg.num_parts} parts does not fit --arch {self.cfg.arch} --backbone {self.cfg.backbone} "
                f"--seg-labels {self.cfg.seg_labels} on {self.cfg.data} ({self.model_cfg.num_classes} classes, "
                f"{self.model_cfg.num_parts} segmenter parts); pretrain with the same options")
        load_weights(model, init.weights, f"--init {path}")

    def _restore(self, last: Checkpoint) -> None:
        load_weights(self.model, last.weights, self.out / "checkpoints" / "last.pt")
        self.optimizer.load_state_dict(last.optimizer)
        load_scheduler_state(self.scheduler, last.scheduler)  # its position; the plan is the configuration's
        if last.scaler:
            self.scaler.load_state_dict(last.scaler)
        self.epoch = int(last.epoch)
        self.best_metric = float(last.best_metric)
        set_rng_state(last.rng)
        if self.dist.is_main:
            with writing(self.out):
                self.metrics = restore_run_files(self.out, last, self.cfg)
        info(f"resuming {self.out} after epoch {self.epoch}")

    def _epoch_seed(self, epoch: int) -> int:
        """Seed of one epoch's data order, augmentation and attack noise; ranks draw different noise."""
        return self.cfg.seed * 1_000_003 + epoch + 7_919 * self.dist.rank

    def _train_loader(self) -> DataLoader:
        """One loader for the whole run (its workers persist on CUDA); ``EpochSampler`` draws each epoch's order
        and every sample's augmentation from seeds of (seed, epoch, sample), so ``--workers`` changes nothing."""
        shard = None
        if self.dist.enabled:
            shard = DistributedSampler(self.train_set, self.dist.world_size, self.dist.rank, shuffle=True,
                                       seed=self.cfg.seed, drop_last=True)
        self.train_order = EpochSampler(len(self.train_set), self._epoch_seed, shard)
        return DataLoader(SeededItems(self.train_set), batch_size=self.cfg.batch_size, sampler=self.train_order,
                          drop_last=len(self.train_set) > self.cfg.batch_size,
                          **loader_options(self.workers, self.device, persistent=self.device.type == "cuda"))

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
                    remove_run_files(self.out)
                (self.out / "checkpoints").mkdir(parents=True, exist_ok=True)
                write_config(self.out / "config.yaml", self.cfg, {"partcli_version": __version__})
        try:
            if self.dist.is_main and self.cfg.logger:
                self.trackers = Trackers.open(self.cfg.logger, self.out, self._global_step(self.epoch + 1, 0))
                self.trackers.log_config(self.out / "config.yaml")
            self._fit_epochs()
        except BaseException:
            self.trackers.close(failed=True)
            if self.dist.is_main and fresh and not (self.out / "checkpoints" / "last.pt").exists():
                with contextlib.suppress(OSError):  # e.g. a read-only file system: the first error is the one to show
                    remove_run_files(self.out)  # nothing resumable was written: leave no half-written run folder
            raise
        self.trackers.close()
        return self.out

    def _fit_epochs(self) -> None:
        with run_progress("run", (self.cfg.epochs - self.epoch) * len(self.train_loader)) as self.run_progress:
            for epoch in range(self.epoch + 1, self.cfg.epochs + 1):
                self._fit_epoch(epoch)

    def _fit_epoch(self, epoch: int) -> None:
        start = time.perf_counter()
        seed_everything(self._epoch_seed(epoch))
        lr = self.optimizer.param_groups[0]["lr"]
        train_loss, train_acc = self._train_epoch(epoch)
        broadcast_buffers(self.model, self.dist)
        val = self.validate() if validates(epoch, self.cfg) else dict.fromkeys(VALIDATION_COLUMNS)
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc, **val,
               "seconds": time.perf_counter() - start}
        metric = selection_metric(row, self.cfg)
        self.epoch = epoch
        if self.dist.is_main:
            improved = metric > self.best_metric
            self.best_metric = max(self.best_metric, metric)
            self.metrics.append(row)
            with writing(self.out):
                write_epoch(self.out, self._state(), row, improved)
            info(describe_epoch(row))
            self._track_epoch(row)

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        self.net.train()
        total_loss = correct = seen = 0.0
        step_cfg = step_config(self.cfg, phase_of(self.cfg, epoch))  # --seg-only-epochs: the segmenter alone first
        self.train_order.set_epoch(epoch)
        start = time.perf_counter()

        def status() -> str:  # the running figures of this process's share, as a log line shows them
            rate = seen / max(time.perf_counter() - start, 1e-9)
            return (f"loss {total_loss / max(seen, 1):.4f} acc {correct / max(seen, 1):.1%} "
                    f"lr {self.optimizer.param_groups[0]['lr']:.3g} {rate:.1f} img/s | {self.run_progress.describe()}")
        steps = track(self.train_loader, f"epoch {epoch}/{self.cfg.epochs}", every=self.cfg.log_interval, status=status)
        for step, (x, masks, y, _) in enumerate(steps, 1):
            x, masks, y = self._to_device(x), masks.to(self.device), y.to(self.device)
            loss, logits = training_loss(self.net, self.model, x, y, masks, step_cfg, self.autocast, self.seg_fn)
            self._stop_unless_finite(loss, epoch, step)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            step_lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used
            self.scheduler.step()
            total_loss += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            self.run_progress.step()
            if self.trackers and step % self.cfg.log_interval == 0:
                self._track_step(self._global_step(epoch, step), step_lr, total_loss / seen, correct / seen,
                                 seen / max(time.perf_counter() - start, 1e-9))
        total_loss, correct, seen = all_sum([total_loss, correct, seen], self.dist, self._reduce_device())
        return total_loss / max(seen, 1), correct / max(seen, 1)

    def _global_step(self, epoch: int, step: int) -> int:
        """The trackers' x axis: optimiser steps since the run began (``step`` of ``epoch``, from 1)."""
        return (epoch - 1) * len(self.train_loader) + step

    def _track_step(self, global_step: int, lr: float, loss: float, acc: float, rate: float) -> None:
        """Give the trackers the running loss and accuracy of the epoch so far (rank 0's share), the step's learning
        rate and the images per second of all ranks together."""
        self.trackers.log_scalars({"step/loss": loss, "step/acc": acc, "step/lr": lr,
                                   "step/images_per_s": rate * self.dist.world_size}, global_step)

    def _track_epoch(self, row: dict[str, Any]) -> None:
        """Give the trackers an epoch's metrics.csv row and, from a part model, its masks figure (rank 0)."""
        if not self.trackers:
            return
        step = self._global_step(row["epoch"], len(self.train_loader))
        self.trackers.log_scalars({f"epoch/{name}": row[name] for name in METRIC_COLUMNS}, step)
        if getattr(self.model, "has_segmenter", False):
            self.model.eval()
            names = label_kind(self.cfg.seg_labels).mask_names(self.data_info)
            figure = validation_masks_figure(self.model, self.val_set, list(self.data_info.classes), names,
                                             self.device, self.autocast, f"{self.out.name}, epoch {row['epoch']}")
            self.trackers.log_figure("masks", figure, step)

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
        k1 = self.model_cfg.num_parts + 1
        cm = torch.zeros(k1, k1, dtype=torch.int64)
        clean = adv = seen = 0.0
        steps = self.cfg.val_steps if self.cfg.val_steps is not None else self.cfg.steps
        step_size = self.cfg.val_step_size if self.cfg.val_step_size is not None else self.cfg.step_size
        for x, masks, y, _ in track(self.val_loader, "validate"):
            x, masks, y = self._to_device(x), masks.to(self.device), y.to(self.device)
            with torch.no_grad(), self.autocast():
                logits, seg = model(x, return_seg=True)
            clean += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            if seg is not None and label_kind(self.cfg.seg_labels).pixel_metric:
                cm += confusion_matrix(seg.argmax(1), masks, k1)
            if self.cfg.adv != "none":
                x_adv = craft_adversarial(model, x, y, self.cfg.eps, step_size, steps, norm=self.cfg.norm,
                                          autocast=self.autocast)
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
        dataset = DatasetDescription(name=self.data_info.name, classes=self.data_info.classes,
                                     parts=[{"name": p.name, "class": p.cls} for p in self.data_info.parts],
                                     image_size=self.cfg.image_size, seg_labels=self.cfg.seg_labels)
        return Checkpoint(
            model_config=self.model_cfg, weights=self.model.state_dict(), train=dataclasses.asdict(self.cfg),
            dataset=dataset, epoch=self.epoch, best_metric=self.best_metric, metrics=list(self.metrics),
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else {}, rng=rng_state(),
        ).to_state()


def run_training(cfg: TrainConfig, resume: bool = False, overwrite: bool = False,
                 given: Iterable[str] | None = None) -> Path:
    """Python API of ``partcli pretrain`` / ``partcli train``: train and return the run folder.

    With ``resume``, ``cfg.out`` names the run to continue; ``given`` names the options the user set, which may
    change only what a resumed run allows (``run_files.resume_point``); by default, the fields of ``cfg`` that
    differ from ``TrainConfig()``'s.
    """
    return Trainer(cfg, resume=resume, overwrite=overwrite, given=given).fit()
