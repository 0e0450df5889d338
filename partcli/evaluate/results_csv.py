"""The attack/evaluate/robustness results CSV: one row per (checkpoint, dataset, split, attack, eps); append-only.

Several commands may append to one file at the same time (jobs of one sweep, colleagues on a shared machine). An
append takes the lock ``<csv>.lock`` beside the file (kept there: it is empty and may be deleted when no job runs),
checks the file, then writes all its rows with one write: rows of two commands never interleave. The check refuses
a file whose last row was cut off (a crash, a full disk, a hand edit) instead of gluing the new row onto it, and
adds the missing line end of a file whose last row is complete. Readers (``compare``, ``report``) skip malformed
rows and name their lines.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from filelock import FileLock

from partcli.errors import PartcliError, writing
from partcli.files import check_can_create, write_atomically
from partcli.progress import info
from partcli.version import __version__

RESULT_COLUMNS = ("checkpoint", "dataset", "split", "suite", "attack", "norm", "eps", "n", "clean_acc", "adv_acc",
                  "clean_pixel_acc", "adv_pixel_acc", "seconds", "partcli_version")
# Columns grow only at the end, so a file of fewer columns is widened and one of more takes padded rows: evaluate's
# rows and attack's rows can share a file. ``robustness`` adds its own columns after RESULT_COLUMNS.
EVALUATE_COLUMNS = (*RESULT_COLUMNS, "fg_pixel_acc", "miou")  # the segmenter's foreground pixel accuracy and mIoU
PGD_SETTINGS = ("steps", "step_size", "restarts")  # what a PGD-type attack ran with (empty for AutoAttack)
ATTACK_COLUMNS = (*EVALUATE_COLUMNS, *PGD_SETTINGS)
SHOWN_LINES = 10  # line numbers named in a note about malformed rows; the rest are counted


@dataclass
class ResultsText:
    """A results CSV split into rows; line numbers are the file's (1 is the header)."""

    header: list[str]
    rows: list[tuple[int, list[str]]]  # (first line, cells) of each row with as many cells as the header
    malformed: list[int]  # the first line of each row with another number of cells or broken quoting
    last_line: int | None  # the first line of the last row, well-formed or not (None: no rows)
    ends_with_newline: bool


def parse_results(text: str) -> ResultsText:
    """Split a CSV's text into its header and rows, sorting out malformed rows (blank lines are ignored)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows, malformed, last = [], [], None
    end = 0  # the last line read so far
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error:  # broken quoting: the reader resumes on the next line
            cells = None
        end = reader.line_num
        if cells == []:
            continue
        if header is None and cells is not None:
            header = cells
            continue
        last = start
        if cells is not None and header is not None and len(cells) == len(header):
            rows.append((start, cells))
        else:
            malformed.append(start)
    return ResultsText(header or [], rows, malformed, last, not text or text.endswith("\n"))


def read_results_file(path: str | Path) -> ResultsText:
    """``parse_results`` of a file (UnicodeDecodeError when it is not UTF-8 text, OSError when unreadable)."""
    return parse_results(Path(path).read_bytes().decode("utf-8"))


def malformed_note(path: str | Path, parsed: ResultsText) -> str:
    """What a reader says about the malformed rows it skipped in ``path``."""
    lines = parsed.malformed
    shown = ", ".join(map(str, lines[:SHOWN_LINES])) + (f" and {len(lines) - SHOWN_LINES} more"
                                                         if len(lines) > SHOWN_LINES else "")
    return (f"{path}: line{'s' if len(lines) > 1 else ''} {shown} skipped: not {len(parsed.header)} cells as in its "
            "header (a row cut off, or edited by hand)")


def check_results_file(path: str | Path, columns: tuple[str, ...] = RESULT_COLUMNS, option: str = "--out") -> None:
    """Refuse, before the work, a results CSV that rows could not be appended to: a folder, a place that cannot be
    written, a file with other columns or a cut-off last row. Nothing is created."""
    path = Path(path)
    _refuse_folder(path, option)
    check_can_create(path, option)
    if path.is_file():
        with writing(path, option):
            existing = path.read_bytes()
            earlier = _earlier_columns(existing, columns)
            if earlier is None:
                _before_rows(path, existing, _written_columns(existing, columns), option)
            else:  # a file of earlier columns is widened when appended to
                _check_widenable(path, earlier, option)


def append_results(path: str | Path, rows: list[dict[str, Any]],
                   columns: tuple[str, ...] = RESULT_COLUMNS) -> None:
    """Append rows (missing figures become empty cells) under the file's lock; refuse a file whose header is not
    ``columns`` or whose last row was cut off. Folders above ``path`` are made now, when the rows are written.

    ``columns``: ``RESULT_COLUMNS``, or those followed by a suite's extra columns (``robustness``'s).
    """
    path = Path(path)
    _refuse_folder(path, "--out")
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(path.with_name(path.name + ".lock")):
            existing = path.read_bytes() if path.exists() else b""
            earlier = _earlier_columns(existing, columns)
            if earlier is not None:
                existing = _widen(path, earlier, columns)
            written = _written_columns(existing, columns)
            text = _before_rows(path, existing, written, "--out") + _rows_text(rows, written)
            _append_bytes(path, text.encode("utf-8"))


def _refuse_cut_off(path: Path, parsed: ResultsText, option: str) -> None:
    if parsed.last_line is not None and parsed.last_line in parsed.malformed:
        raise PartcliError(f"{option} {path}: its last row (line {parsed.last_line}) is cut off or malformed (not "
                           f"{len(parsed.header)} cells); move the file aside or delete its last line")


def _check_widenable(path: Path, parsed: ResultsText, option: str) -> None:
    _refuse_cut_off(path, parsed, option)
    if parsed.malformed:
        raise PartcliError(f"{option} {path}: new columns must be added to it, but line(s) "
                           f"{', '.join(map(str, parsed.malformed[:SHOWN_LINES]))} are malformed; move the file aside "
                           "or mend them")


def _written_columns(existing: bytes, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The file's header when it holds ``columns`` first and then more (``evaluate``'s file, given an attack's rows,
    whose extra cells stay empty), else ``columns``."""
    header = tuple(next(csv.reader(io.StringIO(existing.decode("utf-8", errors="replace"), newline="")), []))
    return header if len(header) > len(columns) and header[:len(columns)] == columns else columns


def _earlier_columns(existing: bytes, columns: tuple[str, ...]) -> ResultsText | None:
    """The parsed file when it is a well-formed CSV whose header is the first of ``columns`` (written before columns
    were added, e.g. ``evaluate``'s miou), else None."""
    try:
        parsed = parse_results(existing.decode("utf-8"))
    except UnicodeDecodeError:
        return None
    header = tuple(parsed.header)
    ok = header and len(header) < len(columns) and columns[:len(header)] == header
    return parsed if ok else None


def _widen(path: Path, parsed: ResultsText, columns: tuple[str, ...]) -> bytes:
    """Rewrite ``path`` (atomically) with all of ``columns``, the new cells of its rows empty; its new bytes. A file
    with a malformed row is refused (rewriting would drop it)."""
    _check_widenable(path, parsed, "--out")
    padding = [""] * (len(columns) - len(parsed.header))
    data = _csv_lines([list(columns), *(cells + padding for _, cells in parsed.rows)]).encode("utf-8")
    write_atomically(path, data)
    info(f"{path}: added the column(s) {', '.join(columns[len(parsed.header):])} (empty in its {len(parsed.rows)} "
         "earlier row(s))")
    return data


def _refuse_folder(path: Path, option: str) -> None:
    if path.is_dir():
        raise PartcliError(f"{option} {path}: a folder; give the CSV file to append to (e.g. {path / 'results.csv'})")


def _before_rows(path: Path, existing: bytes, columns: tuple[str, ...], option: str) -> str:
    """What goes before the new rows: the header for a new or empty file, a line end the file lacks, or nothing;
    a file that cannot take rows is refused."""
    if not existing:
        return _csv_lines([list(columns)])
    try:
        parsed = parse_results(existing.decode("utf-8"))
    except UnicodeDecodeError:
        raise PartcliError(f"{option} {path}: not a text CSV; write the results to a new file") from None
    if tuple(parsed.header) != columns:
        raise PartcliError(f"{option} {path}: exists with other columns; write the results to a new file")
    _refuse_cut_off(path, parsed, option)  # the header equals ``columns`` here
    if parsed.ends_with_newline:
        return ""
    info(f"{path}: its last line had no line end; added one before the new rows")
    return "\r\n"


def _rows_text(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """The CSV lines of ``rows`` (ℓ∞ and this partcli's version unless a row says otherwise)."""
    full = ({"norm": "Linf", "partcli_version": __version__, **row} for row in rows)
    return _csv_lines([_cell(r.get(k)) for k in columns] for r in full)


def _csv_lines(rows: Iterable[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def _append_bytes(path: Path, data: bytes) -> None:
    """Append ``data`` and sync it; a new file gets the permissions ``open()`` gives (0o666 less the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else value
