"""The contract every dataset preparer keeps (docs/formats.md, prepared dataset), as one test case that each tests/test_prepare_*.py
reuses, as torchvision's ``datasets_utils.DatasetTestCase`` does for its datasets.

A subclass named ``Test...`` sets ``prepare`` (the preparer's Python API), ``options`` (keyword arguments that keep
it small and in this process, e.g. ``workers=1``) and ``make_source(root)`` (a tiny source in the official layout).
"""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import pytest
from PIL import Image

from partcli.data.contract import FORMAT_VERSION, SPLITS, read_dataset_info
from partcli.data.dataset import PreparedDataset
from partcli.errors import PartcliError


class PreparerContract:
    prepare: ClassVar[Callable[..., Any]]
    options: ClassVar[dict[str, Any]] = {}

    def make_source(self, root: Path) -> Path:
        raise NotImplementedError

    def run(self, src: Path, out: Path, **extra: Any):
        return type(self).prepare(src, out, **{"seed": 0, **self.options, **extra})

    @pytest.fixture
    def source(self, tmp_path: Path) -> Path:
        return self.make_source(tmp_path / "source")

    @pytest.fixture
    def prepared(self, source: Path, tmp_path: Path) -> Path:
        out = tmp_path / "prepared"
        self.run(source, out)
        return out

    def test_contract_the_output_is_a_valid_prepared_dataset(self, prepared: Path):
        info = read_dataset_info(prepared)
        assert info.format_version == FORMAT_VERSION and info.name and info.classes and info.parts
        assert {p.cls for p in info.parts} <= set(info.classes)
        assert info.source["command"].startswith("prepare ") and info.source["partcli_version"]
        for split in SPLITS:
            with (prepared / f"{split}.csv").open(newline="") as fh:
                rows = list(csv.DictReader(fh))
            assert rows, split
            assert dict(Counter(info.classes[int(r["label"])] for r in rows)) == {
                c: n for c, n in info.counts[split].items() if n}
            for r in rows:
                with Image.open(prepared / r["image"]) as image, Image.open(prepared / r["mask"]) as mask:
                    assert image.mode == "RGB" and mask.mode in ("L", "I;16") and image.size == mask.size
                    assert int(np.asarray(mask).max()) <= info.num_parts
                assert r["mask_source"] == "gt"
            ds = PreparedDataset(prepared, split)  # the loader's own checks
            assert len(ds) == len(rows)

    def test_contract_nothing_is_left_beside_or_inside_the_output(self, prepared: Path):
        assert [p.name for p in prepared.parent.iterdir() if p.name.startswith(f".{prepared.name}.")] == []
        assert not (prepared / ".staged").exists()

    def test_contract_same_seed_same_files(self, source: Path, prepared: Path, tmp_path: Path):
        again = tmp_path / "again"
        self.run(source, again)
        files = sorted(p.relative_to(prepared) for p in prepared.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
        for rel in files:
            if rel.name != "dataset.yaml":  # it records the source folder
                assert (prepared / rel).read_bytes() == (again / rel).read_bytes(), rel

    def test_contract_each_source_image_is_read_once(self, source: Path, tmp_path: Path, monkeypatch):
        reads: list[Path] = []
        real_read, real_open = Path.read_bytes, Image.open

        def image_open(fp, *args, **kwargs):
            if isinstance(fp, (str, Path)):
                reads.append(Path(fp))
            return real_open(fp, *args, **kwargs)

        monkeypatch.setattr(Path, "read_bytes", lambda p: reads.append(p) or real_read(p))
        monkeypatch.setattr(Image, "open", image_open)
        self.run(source, tmp_path / "once")
        opened = Counter(p for p in reads if source in p.parents)
        assert opened and max(opened.values()) == 1, opened.most_common(3)

    def test_contract_a_non_empty_output_needs_overwrite(self, source: Path, tmp_path: Path):
        out = tmp_path / "taken"
        out.mkdir()
        (out / "keep.txt").write_text("x")
        with pytest.raises(PartcliError, match="--overwrite"):
            self.run(source, out)
        assert (out / "keep.txt").read_text() == "x"
        with pytest.raises(PartcliError, match="no prepared dataset"):  # --overwrite replaces only a dataset
            self.run(source, out, overwrite=True)
        assert (out / "keep.txt").read_text() == "x"
        (out / "keep.txt").unlink()
        self.run(source, out)
        (out / "stale.txt").write_text("from an earlier run")
        self.run(source, out, overwrite=True)
        assert not (out / "stale.txt").exists() and (out / "dataset.yaml").is_file()

    def test_contract_a_missing_source_is_a_one_line_error_and_writes_nothing(self, tmp_path: Path):
        out = tmp_path / "out"
        with pytest.raises(PartcliError) as err:
            self.run(tmp_path / "no-such-source", out)
        assert "no-such-source" in str(err.value) and "\n" not in str(err.value)
        assert not out.exists() and not list(tmp_path.glob(".out.*"))
