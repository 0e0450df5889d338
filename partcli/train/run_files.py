"""The files of a run folder and how a resumed run brings them back into agreement.

Every epoch writes ``best.pt`` (when the epoch improved), then ``last.pt``, then its ``metrics.csv`` row, and
each checkpoint also holds every metrics row so far. A kill at any point therefore leaves a folder that a
resume can repair from ``last.pt`` alone: it rewrites ``metrics.csv`` from the checkpoint's rows, removes the
temp files of a checkpoint write that never finished, and re-creates a missing or outdated ``best.pt`` (a
folder written before this order, or a deleted file) from ``last.pt`` when that holds the best epoch; when the
best epoch's weights are gone it says so and writes ``best.pt`` at the next improvement. A kill before
``last.pt`` replays that epoch on resume, which rewrites ``best.pt`` as well; a run killed before its first
checkpoint restarts from its ``config.yaml``.

Paths in a run's configuration are absolute, so a run can be resumed from any working directory; ``--data``
given with ``--resume`` points the run at a dataset that has moved (checked against the checkpoint's
description of it).
"""
from __future__ import annotations

import csv
import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any, Iterable


from partcli.checkpoint import RESUMABLE_VERSIONS, Checkpoint, DatasetDescription, save_checkpoint
from partcli.config import names_library_weights, read_yaml_mapping
from partcli.data.contract import read_dataset_info
from partcli.errors import PartcliError
from partcli.files import atomic_write
from partcli.progress import info, warn
from partcli.settings_history import with_added_settings
from partcli.train.config import RESUMABLE, TrainConfig
from partcli.train.phases import phase_of

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_clean_acc", "val_adv_acc", "val_pixel_acc", "seconds",
                  "val_fg_pixel_acc", "val_miou")
VALIDATION_COLUMNS = ("val_clean_acc", "val_adv_acc", "val_pixel_acc", "val_fg_pixel_acc", "val_miou")
RUN_FILES = ("config.yaml", "metrics.csv", "checkpoints/last.pt", "checkpoints/best.pt",
             "trackers.yaml")  # --logger's tracker run ids (partcli.tracking): a fresh run starts new ones
CHECKPOINT_TEMP_FILES = (".last.pt.*.tmp", ".best.pt.*.tmp")  # files.atomic_write's temp names
PATH_FIELDS = ("data", "out", "init", "pretrained")


def with_absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with its paths made absolute, so that the stored configuration works from any folder
    (``--pretrained imagenet``/``timm…`` name weights, not files, and stay as they are)."""
    return dataclasses.replace(cfg, **{name: str(Path(getattr(cfg, name)).resolve()) for name in PATH_FIELDS
                                       if getattr(cfg, name) and not _names_weights(name, getattr(cfg, name))})


def _names_weights(name: str, value: str) -> bool:
    return name == "pretrained" and names_library_weights(value)


def resume_point(cfg: TrainConfig, given: Iterable[str] | None = None) -> tuple[Checkpoint | None, TrainConfig]:
    """The last checkpoint of the run in ``cfg.out`` (None if it died before its first) and its configuration.

    ``given``: the options the user set (default: the fields of ``cfg`` that differ from ``TrainConfig()``'s).
    Those a resume may change are applied (``resumed_config``); any other that differs from the stored value is
    refused. ``cfg.data``, when given, replaces the stored dataset path (a dataset that moved).
    """
    out = Path(cfg.out)
    last = out / "checkpoints" / "last.pt"
    if last.is_file():
        state = Checkpoint.load(last)
        if state.format_version not in RESUMABLE_VERSIONS:
            raise PartcliError(f"--resume: {last} was written by an older partcli (format {state.format_version}); "
                               f"start a new run, with --init {last} to keep its weights")
        stored = state.train
    elif (out / "config.yaml").is_file():
        state, stored = None, _stored_config(out / "config.yaml")
    else:
        raise PartcliError(f"--resume: {out} holds no run to continue (no {last}, no config.yaml); "
                           "start the run without --resume")
    fields = {k: v for k, v in stored.items() if k in TrainConfig.__dataclass_fields__}
    stored_cfg = dataclasses.replace(TrainConfig(**fields), out=str(out))
    if given is None:
        defaults = TrainConfig()
        given = [f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(defaults, f.name)]
    resumed = resumed_config(stored_cfg, cfg, set(given), int(state.epoch) if state is not None else 0)
    if resumed.data != stored_cfg.data:
        if state is not None:
            check_same_dataset(resumed.data, state.dataset)
    elif not Path(resumed.data).is_dir():
        raise PartcliError(f"--resume: the run's dataset {resumed.data} is not a folder (moved?); pass --data "
                           "with the dataset's new place")
    if state is None:
        info(f"resuming {out}: it has no checkpoint yet, so training starts from epoch 1")
    return state, with_absolute_paths(resumed)


def resumed_config(stored: TrainConfig, cfg: TrainConfig, given: set[str], epoch_reached: int) -> TrainConfig:
    """The stored configuration with what a resume may change taken from ``cfg``; refuse any other change.

    ``--epochs`` extends (or shortens) the run past ``epoch_reached``: the change is recorded in ``replanned``, so
    the cosine schedule of the remaining epochs is planned over the new total (``optim.WarmupCosine``).
    ``--workers``, ``--device`` and ``--log-interval`` change where the run computes or what it prints, not what it
    computes; ``--data`` is a dataset that moved.
    """
    for field in dataclasses.fields(TrainConfig):
        name = field.name
        if name not in given or name in RESUMABLE or _same_setting(name, getattr(cfg, name), getattr(stored, name)):
            continue
        flag = "--" + name.replace("_", "-")
        raise PartcliError(f"{flag} {getattr(cfg, name)}: the run in {stored.out} was made with {flag} "
                           f"{getattr(stored, name)}, and --resume continues its configuration (only "
                           "--epochs, --workers, --device, --log-interval and --logger may change); drop the option, "
                           "or start a new run")
    changes: dict[str, Any] = {name: getattr(cfg, name) for name in ("workers", "device", "data", "log_interval")
                               if name in given and getattr(cfg, name)}
    if "epochs" in given and cfg.epochs != stored.epochs:
        if cfg.epochs <= epoch_reached:
            raise PartcliError(f"--epochs {cfg.epochs}: the run in {stored.out} has already trained {epoch_reached} "
                               "epochs; give more to extend it")
        changes["epochs"] = cfg.epochs
        if epoch_reached:
            changes["replanned"] = [*stored.replanned, [epoch_reached, stored.epochs]]
            info(f"--epochs {cfg.epochs}: extending the run from {stored.epochs} epochs after epoch {epoch_reached}; "
                 f"the cosine schedule of epochs {epoch_reached + 1}-{cfg.epochs} is re-planned over {cfg.epochs}")
    return dataclasses.replace(stored, **changes)


def _same_setting(name: str, mine: Any, theirs: Any) -> bool:
    """Equal values; paths equal as absolute paths (stored ones are), floats up to rounding."""
    if name in PATH_FIELDS and mine and theirs and not _names_weights(name, mine):
        return Path(mine).resolve() == Path(theirs).resolve()
    if isinstance(mine, float) and isinstance(theirs, (int, float)):
        return math.isclose(mine, theirs, rel_tol=1e-9, abs_tol=1e-12)
    return mine == theirs


def _stored_config(path: Path) -> dict[str, Any]:
    doc = read_yaml_mapping(path)
    if doc is None:
        raise PartcliError(f"--resume: {path} is unreadable; start the run afresh with --overwrite")
    return with_added_settings(doc)


def check_same_dataset(data: str, expected: DatasetDescription) -> None:
    """Refuse a ``--data`` for a resumed run that is not the dataset the run trained on (name, classes, parts)."""
    found = read_dataset_info(data)
    parts = [{"name": p.name, "class": p.cls} for p in found.parts]
    differ = [what for what, mine, theirs in (("name", found.name, expected.name),
                                              ("classes", found.classes, expected.classes),
                                              ("parts", parts, expected.parts)) if mine != theirs]
    if differ:
        raise PartcliError(f"--data {data}: not the dataset the run was trained on ({expected.name!r}; "
                           f"different {', '.join(differ)}); give that dataset's folder")


def restore_run_files(out: Path, state: Checkpoint, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Make ``out`` agree with the checkpoint being resumed; return the metrics rows up to its epoch."""
    checkpoints = out / "checkpoints"
    stale = [p for pattern in CHECKPOINT_TEMP_FILES for p in checkpoints.glob(pattern)]
    for path in stale:
        path.unlink()
    if stale:
        info(f"removed {len(stale)} temp file(s) of a checkpoint write that was cut short in {checkpoints}")
    rows = state.metrics
    if rows is None:  # a checkpoint written before checkpoints held their rows: keep the file's, up to its epoch
        rows = _read_metrics(out / "metrics.csv", int(state.epoch))
    _write_metrics(out / "metrics.csv", rows)
    _repair_best(checkpoints, rows, cfg)
    return rows


def validates(epoch: int, cfg: TrainConfig) -> bool:
    """Whether ``epoch`` is validated: every ``--val-every``-th epoch, and the last."""
    return epoch % cfg.val_every == 0 or epoch == cfg.epochs


def selection_metric(row: dict[str, Any], cfg: TrainConfig) -> float:
    """The figure ``best.pt`` is chosen by: PGD validation accuracy for adversarial runs, else clean accuracy.

    -1 (never chosen) for epochs of the seg-only phase (``train.phases``: no classifier was trained),
    epochs not validated (``--val-every``) and, under ``--best-rule clean-ge-adv`` (the paper's code), epochs whose
    clean validation accuracy is below their PGD accuracy.
    """
    clean, adv = _number(row.get("val_clean_acc")), _number(row.get("val_adv_acc"))
    if not phase_of(cfg, int(row["epoch"])).trains_classifier or clean is None:
        return -1.0
    if cfg.adv == "none":
        return clean
    if adv is None or (cfg.best_rule == "clean-ge-adv" and clean < adv):
        return -1.0
    return adv


def _number(value: Any) -> float | None:
    """A metrics cell as a number: rows come as floats (this run) or strings (metrics.csv); empty is None."""
    return None if value is None or value == "" else float(value)


def _repair_best(checkpoints: Path, rows: list[dict[str, Any]], cfg: TrainConfig) -> None:
    """Re-create a missing or outdated ``best.pt`` from ``last.pt`` when that is the best epoch; else say so."""
    if not rows:
        return
    scores = [selection_metric(r, cfg) for r in rows]
    best_row = rows[scores.index(max(scores))]  # the first epoch reaching the maximum, as best.pt is written
    best_epoch, best = int(best_row["epoch"]), checkpoints / "best.pt"
    if best.exists() and int(Checkpoint.load(best).epoch or 0) >= best_epoch:
        return  # up to date, or ahead of last.pt (killed in between): the replayed epoch rewrites it
    if best_row is rows[-1]:
        _copy_atomically(checkpoints / "last.pt", best)
        info(f"{best} was missing or outdated; re-created from last.pt (epoch {best_epoch}, the best so far)")
    else:
        warn(f"{best} is missing or outdated and the weights of the best epoch ({best_epoch}, metric "
             f"{max(scores):.4g}) are gone; best.pt will be written when a later epoch beats it (last.pt is kept)")


def _copy_atomically(src: Path, dst: Path) -> None:
    with src.open("rb") as source, atomic_write(dst) as target:
        shutil.copyfileobj(source, target)


def remove_run_files(out: Path) -> None:
    """Delete the files a run writes, then ``checkpoints/`` and ``out`` if that left them empty; nothing else."""
    for rel in RUN_FILES:
        (out / rel).unlink(missing_ok=True)
    for pattern in CHECKPOINT_TEMP_FILES:
        for path in (out / "checkpoints").glob(pattern):
            path.unlink()
    for folder in (out / "checkpoints", out):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def write_epoch(out: Path, state: dict[str, Any], row: dict[str, Any], improved: bool) -> None:
    """best.pt (when the epoch improved), then last.pt, then the metrics row: each kill point leaves a folder
    that a resume repairs (module docstring)."""
    if improved:
        save_checkpoint(out / "checkpoints" / "best.pt", state)
    save_checkpoint(out / "checkpoints" / "last.pt", state)
    _append_metrics(out / "metrics.csv", row)


def describe_epoch(row: dict[str, Any]) -> str:
    """The info line of one finished epoch."""
    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.4f}", f"train acc {row['train_acc']:.3f}"]
    if row.get("val_clean_acc") is None:
        return ", ".join(parts + ["not validated (--val-every)"]) + f" ({row['seconds']:.1f} s)"
    parts.append(f"val acc {row['val_clean_acc']:.3f}")
    if row.get("val_adv_acc") is not None:
        parts.append(f"val adv acc {row['val_adv_acc']:.3f}")
    if row.get("val_pixel_acc") is not None:
        parts.append(f"val pixel acc {row['val_pixel_acc']:.3f} (foreground {row['val_fg_pixel_acc'] or 0:.3f}, "
                     f"mIoU {row['val_miou']:.3f})")
    return ", ".join(parts) + f" ({row['seconds']:.1f} s)"


def _append_metrics(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(_cells(row))


def last_epoch(out: Path) -> int | None:
    """The last epoch a run folder keeps (``checkpoints/last.pt``, as its ``metrics.csv`` rows say; a row missing
    after a kill is restored by ``--resume``), or None when none finished."""
    if not (out / "checkpoints" / "last.pt").is_file():
        return None
    try:
        return max((int(row["epoch"]) for row in _read_metrics(out / "metrics.csv", 10 ** 9)), default=None)
    except (OSError, ValueError, KeyError):
        return None


def _read_metrics(path: Path, last_epoch: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return [r for r in csv.DictReader(fh) if int(r["epoch"]) <= last_epoch]


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(_cells(r) for r in rows)


def _cells(row: dict[str, Any]) -> dict[str, Any]:
    return {k: ("" if row.get(k) is None else _fmt(row[k])) for k in METRIC_COLUMNS}


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value
