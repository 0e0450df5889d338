"""File helpers shared by several stages."""
from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def numbered_beside(out_csv: str | Path, kind: str, suffix: str) -> Path:
    """``<stem>.<kind>.<k><suffix>`` beside a results CSV, with the first counter k not yet used (one per run)."""
    out_csv = Path(out_csv)
    k = 1
    while (path := out_csv.with_name(f"{out_csv.stem}.{kind}.{k}{suffix}")).exists():
        k += 1
    return path
