"""File helpers shared by several stages: hashes, names beside a results CSV, atomic writes that follow the umask,
and the check that an output can be written before the work that produces it."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

from partcli.errors import writing


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


# -- writing files that other accounts can read ---------------------------------------------------------------
# A file partcli writes gets the permissions ``open()`` would give it: 0o666 less the umask (or the folder's default
# ACL). The temp file of an atomic write is therefore created with ``os.open(..., 0o666)`` and the kernel applies the
# umask itself: no umask is read or changed (``os.umask`` can only be read by setting it, a race with other threads),
# and the renamed result is, say, 0o644 under umask 022 where ``tempfile.mkstemp`` would leave 0o600. Folders are made
# with ``Path.mkdir``, which the umask filters the same way (0o777 less the umask).


@contextlib.contextmanager
def atomic_write(path: str | Path, text: bool = False, sync: bool = True) -> Iterator[IO[Any]]:
    """Write ``path`` through a temp file beside it, renamed over ``path`` when the block ends without error: a reader
    (or a crash) sees the old file or the new one, never half of one. Missing folders above ``path`` are made.

    ``text``: a text handle (UTF-8, no newline translation) instead of a binary one. ``sync``: fsync the data before
    the rename, so that a power cut cannot leave an empty file under the name; a cache whose files are checked when
    read (and made again when damaged) may skip it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_beside(path)
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8", "newline": ""} if text else {})) as fh:
            yield fh
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomically(path: str | Path, data: bytes | str, sync: bool = True) -> None:
    """``data`` (bytes, or text written as UTF-8) into ``path`` with ``atomic_write``."""
    with atomic_write(path, text=isinstance(data, str), sync=sync) as fh:
        fh.write(data)


def _create_beside(path: Path) -> tuple[int, Path]:
    """A new, empty temp file in ``path``'s folder, created 0o666 (the umask applies): its descriptor and path."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def check_can_create(path: str | Path, option: str = "--out") -> None:
    """Refuse now, before any work, an output ``path`` (a file or folder partcli will write) that could not be
    written: the nearest existing folder at or above it must take a new file (tried with a nameless temp file), and an
    existing file must be writable. Nothing is created: folders are made only when the output is written, so a run
    that fails later leaves no empty folder behind."""
    path = Path(path)
    with writing(path, option):
        if path.is_file() and not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        folder = path if path.is_dir() else next(p for p in path.absolute().parents if p.exists())
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        tempfile.TemporaryFile(dir=folder).close()
