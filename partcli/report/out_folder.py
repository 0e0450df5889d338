"""The report's output folder: which ``--out`` may be written (empty, a previous report, or ``--overwrite``) and
writing the page, its HTML twin, its figure files and its text files there.

A previous report is recognised by the first line of its ``index.md`` (``MARKER``); its page and the files it
links are removed before the new ones are written, so no stale figure stays behind.
"""
from __future__ import annotations

import re
from pathlib import Path

from matplotlib.figure import Figure

from partcli.errors import PartcliError, writing
from partcli.progress import track
from partcli.report.figure_files import png_bytes, save_figure
from partcli.report.html import html_page

MARKER = "<!-- partcli report"


def check_out(out: Path, overwrite: bool) -> list[Path]:
    """Refuse an --out that is not the report's to write; return a previous report's files (to replace)."""
    if out.exists() and not out.is_dir():
        raise PartcliError(f"--out {out}: exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return []
    index = out / "index.md"
    try:
        previous = index.is_file() and index.read_text().startswith(MARKER)
    except (OSError, UnicodeDecodeError):
        previous = False
    if previous:
        linked = re.findall(r"\]\(([^)/]+\.(?:png|pdf|svg|tex))\)", index.read_text())
        return [index, out / "index.html"] + [out / name for name in linked if (out / name).is_file()]
    if not overwrite:
        raise PartcliError(f"--out {out}: exists, is not empty and holds no partcli report; choose another folder "
                           "or pass --overwrite (files of the same names are replaced, others kept)")
    return []


def write_report(out: Path, previous: list[Path], page: str, figures: dict[str, Figure], files: dict[str, str],
                 fmt: str) -> None:
    """The figures as ``fmt`` files (linked from the page by their ``.png`` names), the page as ``index.md``, its
    HTML twin with the figures embedded as PNGs, and the text files; ``previous`` is removed first."""
    named = [(name, f"{name.removesuffix('.png')}.{fmt}", fig) for name, fig in figures.items()]
    for name, file_name, _ in named:
        page = page.replace(f"]({name})", f"]({file_name})")
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
        for path in previous:
            path.unlink(missing_ok=True)
        embedded = {}
        for _, file_name, fig in track(named, "drawing report figures"):
            embedded[file_name] = png_bytes(fig)
            if fmt == "png":
                (out / file_name).write_bytes(embedded[file_name])
            else:
                save_figure(fig, out / file_name, fmt)
        for name, text in files.items():
            (out / name).write_text(text)
        (out / "index.md").write_text(page)
        (out / "index.html").write_text(html_page(page.split("\n", 1)[1], embedded, "partcli report"))
