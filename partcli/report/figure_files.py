"""How partcli writes a figure: the file formats it offers, the resolution of PNGs, and the PNG bytes a web page
embeds. A figure's size in inches is its printed size, so its font sizes in points are the printed ones.
"""
from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from partcli.errors import PartcliError

FORMATS = ("png", "pdf", "svg")
PNG_DPI = 200


def check_format(fmt: str) -> str:
    """``fmt`` (a ``--format`` value), refused unless partcli can write it."""
    if fmt not in FORMATS:
        raise PartcliError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    return fmt


def figure_path(out: str | Path | None, fmt: str | None, default: str) -> tuple[Path, str]:
    """The file a single-figure command writes and its format: ``--out``'s extension picks the format, ``--format``
    alone names ``default`` with its extension; both given must agree."""
    if fmt is not None:
        check_format(fmt)
    if out is None:
        fmt = fmt or "png"
        return Path(f"{default}.{fmt}"), fmt
    out = Path(out)
    suffix = out.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise PartcliError(f"--out {out}: expected a file name ending in {', '.join('.' + f for f in FORMATS)}")
    if fmt is not None and suffix != fmt:
        raise PartcliError(f"--out {out}: its extension does not match --format {fmt}")
    return out, suffix


def save_figure(fig: Figure, path: Path, fmt: str) -> None:
    """Write ``fig`` as ``fmt`` (PNGs at ``PNG_DPI``; PDF and SVG keep their text and lines as vectors)."""
    fig.savefig(path, format=fmt, dpi=PNG_DPI)


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as a PNG file's bytes (for a page that embeds it)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PNG_DPI)
    return buffer.getvalue()
