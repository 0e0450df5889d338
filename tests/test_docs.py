"""The documentation: the MkDocs site builds with no broken link, nothing cites a file outside the repository, and
the paths the pages and the README name exist."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("partcli", "docs", "examples", "benchmarks", "tests", "README.md", "mkdocs.yml")
TEXT_SUFFIXES = {".py", ".md", ".sh", ".yaml", ".yml", ".toml", ".txt"}
# Citations of the team's notes that live beside the repository, which a clone does not have.
OUTSIDE = re.compile(r"\.\./shared|DESIGN §|DESIGN\.md|STACK\.md")
REPO_PATH = re.compile(r"`((?:partcli|examples|benchmarks|docs|tests)/[\w./*-]*)`")
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _text_files() -> list[Path]:
    files = []
    for name in SCANNED:
        path = ROOT / name
        files += [path] if path.is_file() else [p for p in path.rglob("*") if p.suffix in TEXT_SUFFIXES]
    return [p for p in files if p.resolve() != Path(__file__).resolve()]


def test_site_builds_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict`` fails on a warning: a broken link or anchor, a page missing from the nav."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "formats" / "index.html").is_file()
    assert (tmp_path / "site" / "design" / "index.html").is_file()


def test_nothing_cites_a_file_outside_the_repository() -> None:
    hits = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            for path in _text_files()
            for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            if OUTSIDE.search(line)]
    assert not hits, "cite the repository's docs (e.g. docs/formats.md) instead:\n" + "\n".join(hits)


@pytest.mark.parametrize("page", ["README.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))])
def test_named_repository_paths_exist(page: str) -> None:
    """Paths a page names in code spans (``partcli/models/bbox.py``, ``examples/paper/*.yaml``) are in the
    repository, so the docs follow when code moves."""
    text = (ROOT / page if page == "README.md" else ROOT / "docs" / page).read_text(encoding="utf-8")
    missing = [rel for rel in REPO_PATH.findall(text)
               if not (any(ROOT.glob(rel)) if "*" in rel else (ROOT / rel.rstrip("/")).exists())]
    assert not missing, f"{page} names paths that do not exist: {missing}"


def test_readme_links_and_make_targets_exist() -> None:
    """README.md is read on the repository's front page, outside MkDocs: its links and images must resolve there,
    and the ``make`` commands it names must be Makefile targets."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = [t for t in MARKDOWN_LINK.findall(text) if "://" not in t]
    assert "docs/demo-masks.png" in links and "docs/index.md" in links
    assert not [t for t in links if not (ROOT / t).exists()]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in set(re.findall(r"^make ([\w-]+)", text, flags=re.M)):
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), f"make {target}: no such Makefile target"
