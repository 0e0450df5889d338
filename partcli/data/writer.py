"""Writing a prepared dataset (docs/formats.md, prepared dataset): output folders and ``DatasetWriter``.

Writers build the dataset in a temporary sibling folder and rename it into place at the end, so an interrupted run
never leaves a folder that passes validation.
"""
from __future__ import annotations

import csv
import io
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from partcli.data.contract import CSV_COLUMNS, SPLITS, DatasetInfo, Part, Sample, mask_dtype
from partcli.errors import PartcliError, writing
from partcli.progress import info
from partcli.version import __version__

PARTIAL_SUFFIX = ".partial"  # a dataset being written, in a hidden folder beside its --out


def prepare_output_dir(out: str | Path, overwrite: bool, option: str = "--out", dataset: bool = True) -> Path:
    """Refuse an existing, non-empty ``out`` unless ``overwrite``; return it as a Path (not created).

    ``dataset``: ``out`` is a prepared dataset, which ``--overwrite`` replaces whole; a non-empty folder that is not
    one (no dataset.yaml) is refused even with ``--overwrite``, so that unrelated files are never deleted.
    """
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise PartcliError(f"{option} {out}: exists and is not a folder")
        if any(out.iterdir()) and not overwrite:
            raise PartcliError(f"{option} {out}: exists and is not empty; choose another path or pass --overwrite")
        if dataset and any(out.iterdir()) and not (out / "dataset.yaml").is_file():
            raise PartcliError(f"{option} {out}: holds files but no prepared dataset (no dataset.yaml), and "
                               "--overwrite replaces only a prepared dataset: choose another folder or empty it")
    return out


def partial_folder(out: Path) -> Path:
    """A new, empty ``.<out name>.<8 random characters>.partial`` folder beside ``out``, made with the umask's
    permissions (``tempfile.mkdtemp`` would make it private, and the dataset would stay private once renamed)."""
    while True:
        folder = out.parent / f".{out.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def remove_partial_folders(out: Path) -> None:
    """Delete the ``.<out name>.<random>.partial`` folders that killed writes of ``out`` left beside it."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.[a-z0-9_]{{8}}{re.escape(PARTIAL_SUFFIX)}")  # partial_folder's
    stale = [p for p in out.parent.iterdir() if p.is_dir() and pattern.fullmatch(p.name)]
    for folder in stale:
        shutil.rmtree(folder)
    if stale:
        info(f"removed {len(stale)} partial folder(s) that an interrupted run left beside {out}")


class DatasetWriter:
    """Builds a prepared dataset in a temporary sibling folder and renames it to ``out`` on ``finish``.

    Use as a context manager: if the block raises (or the process dies), ``out`` is left untouched and the
    temporary folder is removed (or, after a kill, left with a ``.partial`` name and no dataset.yaml, until the
    next write of ``out`` removes it).
    """

    STAGED = ".staged"  # images written before their split is known (``stage``), moved into place by ``add``

    def __init__(self, out: str | Path, classes: list[str], parts: list[Part], name: str, overwrite: bool = False):
        self.out = prepare_output_dir(out, overwrite)
        self.tmp: Path | None = None
        self._rows: dict[str, list[Sample]] = {s: [] for s in SPLITS}
        self._staged = 0
        self.info = DatasetInfo(name=name, classes=[], parts=[])
        self.set_taxonomy(classes, parts)

    def set_taxonomy(self, classes: list[str], parts: list[Part]) -> None:
        """Set the classes and parts, for a source that defines them only after it has been read; before any ``add``."""
        assert not any(self._rows.values()), "set the taxonomy before adding samples"
        self.info.classes, self.info.parts = list(classes), list(parts)
        self._dtype = mask_dtype(len(parts))

    def stage(self, data: bytes) -> Path:
        """Write an encoded image now, before its split is known, so that a preparer reads each source image once;
        ``add(image=<the returned path>)`` moves it into place, ``finish`` removes what was never added."""
        assert self.tmp is not None, "use DatasetWriter as a context manager"
        folder = self.tmp / self.STAGED
        folder.mkdir(exist_ok=True)
        self._staged += 1
        path = folder / str(self._staged)
        path.write_bytes(data)
        return path

    def __enter__(self) -> "DatasetWriter":
        with writing(self.out):
            self.out.parent.mkdir(parents=True, exist_ok=True)
            remove_partial_folders(self.out)
            self.tmp = partial_folder(self.out)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp is not None and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def add(
        self,
        split: str,
        stem: str,
        label: int,
        image: Image.Image | bytes | Path | None = None,
        image_ext: str = ".png",
        mask: np.ndarray | Path | None = None,
        mask_source: str = "gt",
        image_rel: str | None = None,
    ) -> Sample:
        """Write one sample and record its CSV row.

        ``image`` is a PIL image (saved losslessly as PNG unless ``image_ext`` is .jpg), the raw bytes of
        an already-encoded file (copied as is, so JPEGs are not re-compressed) or the path ``stage`` returned for
        such bytes (moved into place). ``image_rel`` instead
        references an existing file by a path relative to the dataset folder (nothing is written). ``mask`` is an
        H×W array of part ids, or the path of a PNG the caller already encoded in the dataset's mask format (moved
        into place unchecked: a preparer's worker process encodes each mask once).
        ``stem`` names the files: ``images/<split>/<stem><ext>``, ``masks/<split>/<stem>.png``.
        """
        assert self.tmp is not None, "use DatasetWriter as a context manager"
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        if not 0 <= label < self.info.num_classes:
            raise ValueError(f"label {label} outside 0..{self.info.num_classes - 1}")
        if image_rel is None:
            image_rel = f"images/{split}/{stem}{image_ext}"
            dest = self.tmp / image_rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(image, Path):
                os.replace(image, dest)
            elif isinstance(image, (bytes, bytearray)):
                dest.write_bytes(image)
            elif isinstance(image, Image.Image):
                image.convert("RGB").save(dest, quality=95) if image_ext.lower() in (".jpg", ".jpeg") else image.convert("RGB").save(dest)
            else:
                raise ValueError("give either image (PIL image or bytes) or image_rel")
        mask_rel = ""
        if isinstance(mask, Path):
            mask_rel = f"masks/{split}/{stem}.png"
            (self.tmp / mask_rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(mask, self.tmp / mask_rel)
        elif mask is not None:
            if mask.ndim != 2:
                raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
            if mask.size and (int(mask.max()) > self.info.num_parts or int(mask.min()) < 0):
                raise ValueError(f"mask of {stem}: part ids outside 0..{self.info.num_parts}")
            mask_rel = f"masks/{split}/{stem}.png"
            self.write_mask(mask_rel, mask)
        else:
            mask_source = ""
        row = Sample(image_rel, mask_rel, int(label), mask_source)
        self._rows[split].append(row)
        return row

    def write_mask(self, rel: str, mask: np.ndarray) -> None:
        """Save a part-id mask as a lossless single-channel PNG (uint8, or uint16 when K ≥ 255)."""
        assert self.tmp is not None
        dest = self.tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(mask.astype(self._dtype))).save(buf, format="PNG")
        dest.write_bytes(buf.getvalue())

    def finish(self, source: dict[str, Any], extra: dict[str, Any] | None = None) -> DatasetInfo:
        """Write the split CSVs and dataset.yaml, then move the folder into place atomically."""
        assert self.tmp is not None
        for split in SPLITS:
            if not self._rows[split]:
                raise PartcliError(f"{self.out}: split {split!r} would be empty; the source holds too few usable samples for an 80/10/10 split")
        counts: dict[str, dict[str, int]] = {}
        for split, rows in self._rows.items():
            with (self.tmp / f"{split}.csv").open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(CSV_COLUMNS)
                for r in rows:
                    writer.writerow([r.image, r.mask, r.label, r.mask_source])
            counts[split] = {c: sum(r.label == i for r in rows) for i, c in enumerate(self.info.classes)}
        self.info.counts = counts
        shutil.rmtree(self.tmp / self.STAGED, ignore_errors=True)  # staged images that were never added
        self.info.source = {**source, "partcli_version": __version__}
        self.info.extra = dict(extra or {})
        (self.tmp / "dataset.yaml").write_text(yaml.safe_dump(self.info.to_yaml_dict(), sort_keys=False))
        if self.out.exists():
            shutil.rmtree(self.out)
        os.replace(self.tmp, self.out)
        self.tmp = None
        return self.info
