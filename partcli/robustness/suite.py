"""``partcli robustness``: accuracy under non-adversarial distribution shift (paper §5.1, App. D.11).

Suites: ``corruptions`` (the 15 ImageNet-C types × 5 severities, plus their mean: Tables 2 and 22),
``foreground`` (Only-FG, Only-BG, Mixed-Same, Mixed-Rand and the BG-gap: Table 3), ``shape-texture`` (cue-conflict
images, shape accuracy and shape bias: Table 4) and ``all``. Every set is made from the split at the model's
resolution (the checkpoint's training size, after the evaluation resize and centre crop); the foreground and
shape-texture sets need every sample's part mask. Two folder sets add the paper's own images: ``--imagenet9``
(the ImageNet-9 Backgrounds Challenge release, ``in9/*`` rows of ``foreground``) and ``--stylized``
(Stylized-ImageNet, the ``stylized-imagenet`` row of ``shape-texture``). They need no mask: where the split's masks
cannot make a suite's sets, a suite with a folder set runs that set alone (with a note) instead of refusing. Rows go
to a results CSV in the style of ``attack``'s (``ROBUSTNESS_COLUMNS``), one per (checkpoint, dataset, split, suite,
shift, severity).

Under torchrun (``partcli.shards``) every rank loads the model and the split and makes the foreground and
cue-conflict sets; the predictions on the clean split and on each set are shared out by batch (batch ``b`` of
``batch_size`` images on rank ``b % world_size``, the stylized images made by that rank too), and the corruptions by
(type, severity) pair, pair ``k`` in the order types × severities on rank ``k % world_size``, which makes (or reads
from the cache) and predicts that pair's images: the cache names its files by split index, one folder per pair, so
each file is written by one rank. Every image is made and predicted exactly as by a single process, so the rows
are a single process's. The ImageNet-9 and Stylized-ImageNet folder sets run on rank 0 alone (the others wait);
rank 0 alone writes the results CSV.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn

from partcli.config import check_fields
from partcli.data.dataset import PreparedDataset, eval_transform
from partcli.errors import PartcliError, check_writable
from partcli.evaluate.results_csv import RESULT_COLUMNS, append_results, check_results_file
from partcli.progress import track
from partcli.robustness.corruptions import (CORRUPTIONS, MIN_SIZE, SEVERITIES, CorruptionCache, check_corruptions,
                                            corrupt_image, corruption_seed, require_library)
from partcli.robustness.config import SUITES, RobustnessConfig
from partcli.robustness.folder_images import check_folder
from partcli.robustness.foreground import VARIANTS, foreground_variants, pair_indices
from partcli.robustness.imagenet9 import imagenet9_rows, load_imagenet9
from partcli.robustness.shape_texture import cue_conflict_set, load_stylizer, shape_scores, stylize
from partcli.robustness.stylized_folder import match_split, stylized_rows
from partcli.runtime import check_device
from partcli.shards import SINGLE, Shard, join_ranks

if TYPE_CHECKING:
    from rich.table import Table

MASK_SUITES = ("foreground", "shape-texture")
NO_MASK_REMEDY = "these suites make their images from the masks (run --suite corruptions alone)"
NO_OBJECT_REMEDY = "these suites need an object in every sample"
FOLDER_OPTIONS = {"foreground": "--imagenet9", "shape-texture": "--stylized"}  # the suite each folder set joins
ROBUSTNESS_COLUMNS = RESULT_COLUMNS + ("severity", "shape_bias", "bg_gap", "seed")
LISTED = 5  # samples named in an error before "and N more"


@dataclass
class ShiftSamples:
    """A split at the model's resolution: N×S×S×3 uint8 images, N×S×S part ids (or None), labels, image paths."""

    images: np.ndarray
    masks: np.ndarray | None
    labels: np.ndarray
    names: list[str]


@dataclass
class RobustnessResult:
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def suites_of(suite: str) -> tuple[str, ...]:
    if suite not in SUITES:
        raise PartcliError(f"--suite {suite!r}: expected one of {', '.join(SUITES)}")
    return SUITES[:-1] if suite == "all" else (suite,)


def check_options(suite: str, corruptions: tuple[str, ...], severities: tuple[int, ...], seed: int,
                  batch_size: int, device: str) -> tuple[str, ...]:
    """Refuse bad options before any work, naming the option; return the suites to run."""
    suites = suites_of(suite)
    check_corruptions(corruptions, severities)
    check_fields(RobustnessConfig(seed=seed, batch_size=batch_size))
    check_device(device)
    return suites


def check_folder_options(suites: tuple[str, ...], folders: dict[str, str | Path | None]) -> tuple[str, ...]:
    """Refuse a folder set given with a suite that does not use it; return the suites that have one.
    ``folders``: suite → its folder (None when not given)."""
    for suite, folder in folders.items():
        if folder is not None and suite not in suites:
            raise PartcliError(f"{FOLDER_OPTIONS[suite]} {folder}: adds rows to --suite {suite} (or all); "
                               f"--suite {'/'.join(suites)} does not use it")
        if folder is not None:
            check_folder(folder, FOLDER_OPTIONS[suite])
    return tuple(suite for suite, folder in folders.items() if folder is not None)


def run_robustness(ckpt: str | Path | None, data: str | Path, *, suite: str = "all", split: str = "test",
                   out: str | Path | None = "results/robustness.csv",
                   corruptions: tuple[str, ...] | list[str] = CORRUPTIONS,
                   severities: tuple[int, ...] | list[int] = SEVERITIES, seed: int = 0, batch_size: int = 256,
                   device: str = "cpu", cache: str | Path | None = None,
                   stylizer: str | Path | None = None, imagenet9: str | Path | None = None,
                   stylized: str | Path | None = None, model: str | Path | nn.Module | None = None,
                   image_size: int | None = None, shard: Shard | None = None) -> RobustnessResult:
    """Python API of ``partcli robustness``: evaluate ``ckpt`` (or ``model``, any model: ``partcli.models.sources``,
    at ``image_size``, default 224) on the shifted sets of ``split`` and append the rows to ``out`` (if given).
    ``cache``: folder of the corrupted images (default ``<data>/.cache/corruptions``).
    ``imagenet9``: the ImageNet-9 Backgrounds Challenge release folder (adds ``in9/*`` rows to ``foreground``);
    ``stylized``: a Stylized-ImageNet folder (adds a ``stylized-imagenet`` row to ``shape-texture``).
    ``shard``: this rank's share under torchrun (default: joined from torchrun's environment; module docstring);
    ``device`` is then this rank's (e.g. ``cuda:LOCAL_RANK``)."""
    from partcli.evaluate.evaluate import EXTERNAL_IMAGE_SIZE, load_for_dataset
    from partcli.models.sources import open_model

    shard = shard or join_ranks(device)
    corruptions, severities = tuple(corruptions), tuple(severities)
    with shard.together():  # before the model is loaded and anything is printed
        suites = check_options(suite, corruptions, severities, seed, batch_size, device)
        if out is not None and shard.is_main:  # the folder is made only when the rows are written
            check_results_file(out, ROBUSTNESS_COLUMNS)
    shard.agree({"--ckpt": ckpt, "--model": model, "--data": data, "--image-size": image_size, "--suite": suite,
                 "--split": split, "--out": out, "--corruption": corruptions, "--severity": severities, "--seed": seed,
                 "--batch-size": batch_size, "--cache": cache, "--stylizer": stylizer, "--imagenet9": imagenet9,
                 "--stylized": stylized})
    notes: list[str] = []
    with shard.together():  # the files every rank reads must be there on every node
        with_folders = check_folder_options(suites, {"foreground": imagenet9, "shape-texture": stylized})
        if "corruptions" in suites:
            require_library()
        net = load_stylizer(stylizer) if stylizer is not None and "shape-texture" in suites else None
        source = open_model(ckpt, model)
        model, ds = load_for_dataset(source, data, split, image_size)
        size = image_size or source.image_size or EXTERNAL_IMAGE_SIZE
        if "corruptions" in suites and size < MIN_SIZE:
            raise PartcliError(f"--suite corruptions: {source.name} works at {size} px; the ImageNet-C corruptions "
                               f"need at least {MIN_SIZE} px")
        ds.transform = eval_transform(size)  # the true part masks (no --seg-labels relabelling): they define the object
        in9 = stylized_matches = None
        if imagenet9 is not None:
            in9, in9_notes = load_imagenet9(imagenet9, ds.info.classes, data)
            notes += in9_notes
        if stylized is not None:
            stylized_matches, stylized_notes = match_split(ds, stylized, data)
            notes += stylized_notes
        split_suites = _mask_suites_that_run(suites, _missing_masks(ds), NO_MASK_REMEDY, with_folders, notes)
    corruption_cache = None
    with shard.together():  # once every rank has what it reads: nothing is written when one of them lacks it
        if "corruptions" in suites:  # every rank writes the images of its corruption pairs
            corruption_cache = CorruptionCache(cache or Path(data) / ".cache" / "corruptions", data, split, size, seed)
            check_writable(corruption_cache.folder / "key.json", "--cache")
    shard.agree({"the checkpoint or model file (sha256)": source.fingerprint})
    with shard.together():
        needs_masks = any(s in MASK_SUITES for s in split_suites)
        samples = load_split(ds, with_masks=needs_masks) if split_suites else None
        if samples is not None and needs_masks:
            split_suites = _mask_suites_that_run(split_suites, _empty_objects(samples, ds, size), NO_OBJECT_REMEDY,
                                                 with_folders, notes)
    result = RobustnessResult([])
    if split_suites:
        result = evaluate_shifts(model, samples, split_suites, corruptions=corruptions, severities=severities,
                                 seed=seed, batch_size=batch_size, device=device, cache=corruption_cache,
                                 stylizer=net, stylizer_source=stylizer, shard=shard)
    result.notes = notes + result.notes
    model = model.to(device).eval()
    predict = lambda images: predict_labels(model, images, batch_size, device)  # noqa: E731

    def folder_sets() -> list[tuple[list[dict[str, Any]], list[str]]]:
        sets = []
        if in9 is not None:
            sets.append(imagenet9_rows(predict, in9, size, seed, batch_size))
        if stylized_matches is not None:
            sets.append(stylized_rows(predict, ds, stylized_matches, size, batch_size, stylized))
        return sets

    for rows, folder_notes in shard.on_main(folder_sets):  # rank 0 reads the folders; every rank gets the rows
        result.rows += rows
        result.notes += folder_notes
    result.rows.sort(key=lambda row: suites.index(row["suite"]))  # stable: each suite's folder rows after its own
    for row in result.rows:
        row.update(checkpoint=source.name, dataset=str(data), split=split)
    if out is not None and shard.is_main:
        append_results(out, result.rows, ROBUSTNESS_COLUMNS)
    return result


def load_split(ds: PreparedDataset, with_masks: bool) -> ShiftSamples:
    """Every sample of ``ds`` through its transform, images back to uint8 (they are k/255 exactly)."""
    images, masks = [], []
    for i in track(range(len(ds)), f"loading {ds.split}"):
        image, mask, _, _ = ds[i]
        images.append((image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
        if with_masks:
            masks.append(mask.numpy())
    return ShiftSamples(np.stack(images), np.stack(masks) if with_masks else None,
                        np.array([s.label for s in ds.samples]), [s.image for s in ds.samples])


def evaluate_shifts(model: nn.Module, samples: ShiftSamples, suites: tuple[str, ...], *,
                    corruptions: tuple[str, ...] = CORRUPTIONS, severities: tuple[int, ...] = SEVERITIES,
                    seed: int = 0, batch_size: int = 256, device: str = "cpu", cache: CorruptionCache | None = None,
                    stylizer: Callable | None = None, stylizer_source: str | Path | None = None,
                    shard: Shard = SINGLE) -> RobustnessResult:
    """The rows of ``suites`` for any module mapping N×3×S×S images in [0, 1] to logits (no file is read but the
    cache's). ``shard``: this rank's share under torchrun (module docstring); every rank gets all the rows."""
    mask_suites = [s for s in suites if s in MASK_SUITES]
    if mask_suites and len(np.unique(samples.labels)) < 2:
        raise PartcliError(f"--suite {'/'.join(mask_suites)}: the split holds one class only; Mixed-Rand and cue "
                           "conflicts need samples of another class")
    model = model.to(device).eval()

    def predict_made(n: int, make: Callable[[slice], np.ndarray]) -> np.ndarray:
        """Predicted classes of n images made batch by batch (``make(batch slice)``), each batch by one rank."""
        batches = [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
        return np.concatenate(shard.map(batches, lambda _, sl: predict_labels(model, make(sl), batch_size, device))
                              or [np.zeros(0, dtype=np.int64)])

    predict = lambda images: predict_made(len(images), images.__getitem__)  # noqa: E731
    start = time.perf_counter()
    clean = float((predict(samples.images) == samples.labels).mean())
    clean_seconds = time.perf_counter() - start
    base = {"n": len(samples.labels), "clean_acc": clean, "norm": None, "eps": None, "seed": seed}
    result = RobustnessResult([])
    if "corruptions" in suites:
        on_this_rank = lambda images: predict_labels(model, images, batch_size, device)  # noqa: E731
        result.rows += _corruption_rows(samples, on_this_rank, corruptions, severities, seed, cache, base, shard)
    if "foreground" in suites:
        result.rows += _foreground_rows(samples, predict, seed, base, result.notes)
    if "shape-texture" in suites:
        result.rows += _shape_texture_rows(samples, predict_made, seed, base, stylizer, stylizer_source)
    for row in result.rows:
        row["seconds"] += clean_seconds / len(result.rows)  # the shared clean pass, spread over the rows
    return result


def predict_labels(model: nn.Module, images: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """Predicted classes of N×H×W×3 uint8 ``images``."""
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start:start + batch_size]).permute(0, 3, 1, 2).float().div(255)
            out.append(model(x.to(device)).argmax(1).cpu())
    return torch.cat(out).numpy()


def corruption_mean_name(corruptions: tuple[str, ...], severities: tuple[int, ...]) -> str:
    """``mean`` over the full 15 × 5 benchmark (the paper's corruption robustness), else names what it averages."""
    if set(corruptions) == set(CORRUPTIONS) and set(severities) == set(SEVERITIES):
        return "mean"
    return f"mean/{'+'.join(corruptions)}/{'+'.join(map(str, severities))}"


def _corruption_rows(samples: ShiftSamples, predict: Callable, corruptions: tuple[str, ...],
                     severities: tuple[int, ...], seed: int, cache: CorruptionCache | None,
                     base: dict[str, Any], shard: Shard) -> list[dict[str, Any]]:
    """One row per (type, severity) pair, each pair made and predicted (``predict``, on this rank) by one rank."""
    pairs = [(c, s) for c in corruptions for s in severities]

    def accuracy(_: int, pair: tuple[str, int]) -> tuple[float, float]:
        name, severity = pair
        start = time.perf_counter()
        if cache is not None:
            images = cache.get(samples.images, name, severity)
        else:
            images = np.stack([corrupt_image(im, name, severity, corruption_seed(seed, i, name, severity))
                               for i, im in enumerate(samples.images)])
        return float((predict(images) == samples.labels).mean()), time.perf_counter() - start

    rows = [{**base, "suite": "corruptions", "attack": f"{name}/{severity}", "severity": severity, "adv_acc": acc,
             "seconds": seconds}
            for (name, severity), (acc, seconds) in zip(pairs, shard.map(pairs, accuracy, "corruptions"))]
    rows.append({**base, "suite": "corruptions", "attack": corruption_mean_name(corruptions, severities),
                 "adv_acc": float(np.mean([r["adv_acc"] for r in rows])), "seconds": 0.0})
    return rows


def _foreground_rows(samples: ShiftSamples, predict: Callable, seed: int, base: dict[str, Any],
                     notes: list[str]) -> list[dict[str, Any]]:
    alone = np.flatnonzero(pair_indices(samples.labels, seed, "mixed-same") == np.arange(len(samples.labels)))
    if len(alone):
        notes.append(f"mixed-same: {len(alone)} sample(s) are the only one of their class in the split and keep "
                     f"their own background (e.g. {samples.names[alone[0]]})")
    start = time.perf_counter()
    variants = foreground_variants(samples.images, samples.masks, samples.labels, seed)
    make_seconds = (time.perf_counter() - start) / len(VARIANTS)
    rows, acc = [], {}
    for variant in VARIANTS:
        start = time.perf_counter()
        acc[variant] = float((predict(variants[variant]) == samples.labels).mean())
        rows.append({**base, "suite": "foreground", "attack": variant, "adv_acc": acc[variant],
                     "seconds": time.perf_counter() - start + make_seconds})
    rows.append({**base, "suite": "foreground", "attack": "bg-gap", "bg_gap": acc["mixed-same"] - acc["mixed-rand"],
                 "seconds": 0.0})
    return rows


def _shape_texture_rows(samples: ShiftSamples, predict_made: Callable, seed: int, base: dict[str, Any],
                        stylizer: Callable | None, stylizer_source: str | Path | None) -> list[dict[str, Any]]:
    """``predict_made(n, make)``: the predicted classes of n images that ``make(batch slice)`` makes."""
    start = time.perf_counter()
    conflicts, partner = cue_conflict_set(samples.images, samples.masks, samples.labels, seed)
    make_seconds = time.perf_counter() - start
    texture_labels = samples.labels[partner]
    sets: dict[str, Callable[[slice], np.ndarray]] = {"cue-conflict": conflicts.__getitem__}
    if stylizer is not None:
        sets["stylized"] = lambda sl: np.stack([stylize(stylizer, samples.images[i], samples.images[partner[i]],
                                                        stylizer_source) for i in range(sl.start, sl.stop)])
    rows = []
    for name, make in sets.items():
        start = time.perf_counter()
        shape_acc, bias = shape_scores(predict_made(len(partner), make), samples.labels, texture_labels)
        rows.append({**base, "suite": "shape-texture", "attack": name, "adv_acc": shape_acc, "shape_bias": bias,
                     "seconds": time.perf_counter() - start + (make_seconds if name == "cue-conflict" else 0.0)})
    return rows


def _missing_masks(ds: PreparedDataset) -> str | None:
    """Why the split's masks cannot make the mask-made sets (samples without a mask), or None."""
    missing = [s.image for i, s in enumerate(ds.samples) if not ds.has_mask(i)]
    if not missing:
        return None
    return f"{len(missing)} of {len(ds)} {ds.split} samples of {ds.root} have no part mask ({_listed(missing)})"


def _empty_objects(samples: ShiftSamples, ds: PreparedDataset, size: int) -> str | None:
    """Why the split's masks cannot make the mask-made sets (masks without an object pixel), or None."""
    empty = [name for name, mask in zip(samples.names, samples.masks) if not (mask > 0).any()]
    if not empty:
        return None
    return (f"{len(empty)} {ds.split} samples of {ds.root} have no object pixel in their mask at {size} px "
            f"({_listed(empty)})")


def _mask_suites_that_run(suites: tuple[str, ...], problem: str | None, remedy: str, with_folders: tuple[str, ...],
                          notes: list[str]) -> tuple[str, ...]:
    """The suites whose sets are made from the split: all of them when its masks can make them (``problem`` None);
    else refuse (``problem``; ``remedy``) when a mask suite has no folder set, and otherwise leave the mask suites
    to their folder sets, with a note."""
    mask_suites = [s for s in suites if s in MASK_SUITES]
    if problem is None or not mask_suites:
        return suites
    if any(s not in with_folders for s in mask_suites):
        hint = (f"; the {' and '.join(FOLDER_OPTIONS[s] for s in with_folders)} rows need no mask: run --suite "
                f"{'/'.join(with_folders)} alone for them") if with_folders else ""
        raise PartcliError(f"--suite {'/'.join(mask_suites)}: {problem}; {remedy}{hint}")
    notes.append(f"--suite {'/'.join(mask_suites)}: {problem}: the mask-made sets are skipped, only the "
                 f"{' and '.join(FOLDER_OPTIONS[s] for s in mask_suites)} rows are made")
    return tuple(s for s in suites if s not in MASK_SUITES)


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more


def robustness_tables(result: RobustnessResult, title: str) -> list["Table"]:
    """Rich tables of the rows: corruptions as a type × severity grid, the other suites one row per set."""
    from rich.markup import escape
    from rich.table import Table

    pct = lambda v: "–" if v is None else f"{100 * v:.1f}"  # noqa: E731
    tables = []
    corruption = [r for r in result.rows if r["suite"] == "corruptions" and r.get("severity")]
    if corruption:
        severities = sorted({r["severity"] for r in corruption})
        grid = Table(title=escape(f"{title}: corruptions, accuracy (%)"))
        for column in ("corruption", *map(str, severities), "mean"):
            grid.add_column(column, justify="left" if column == "corruption" else "right")
        for name in dict.fromkeys(r["attack"].split("/")[0] for r in corruption):
            accs = {r["severity"]: r["adv_acc"] for r in corruption if r["attack"].split("/")[0] == name}
            grid.add_row(name, *[pct(accs.get(s)) for s in severities], pct(float(np.mean(list(accs.values())))))
        mean = next(r for r in result.rows if r["suite"] == "corruptions" and not r.get("severity"))
        grid.caption = escape(f"clean {pct(mean['clean_acc'])}, {mean['attack']} {pct(mean['adv_acc'])} "
                              f"(n={mean['n']})")
        tables.append(grid)
    others = [r for r in result.rows if r["suite"] != "corruptions"]
    if others:
        table = Table(title=escape(f"{title}: foreground and shape-texture (%)"))
        for column in ("suite", "set", "n", "clean acc", "acc", "shape bias", "BG-gap"):
            table.add_column(column, justify="left" if column in ("suite", "set") else "right")
        for r in others:
            table.add_row(r["suite"], r["attack"], str(r["n"]), pct(r["clean_acc"]), pct(r.get("adv_acc")),
                          pct(r.get("shape_bias")), pct(r.get("bg_gap")))
        tables.append(table)
    return tables
