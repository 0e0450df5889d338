"""`prepare synthetic`: contract output, masks, determinism, loader, option errors and the intended cues."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from partcli.data.contract import SPLITS, read_dataset_info, read_split
from partcli.data.dataset import PreparedDataset
from partcli.data.synthetic import (
    BACKGROUNDS,
    CLASS_PARTS,
    CLASSES,
    HUE_JITTER,
    PART_ROLES,
    ROLE_HUES,
    first_part_id,
    PREFERRED_BACKGROUND,
    pick_background,
    prepare_synthetic,
    render_sample,
)
from partcli.errors import PartcliError

N, SIZE = 60, 32


@pytest.fixture(scope="module")
def datasets(module_tmp) -> dict[str, Path]:
    root = module_tmp
    out = {"a": root / "a", "again": root / "again", "other": root / "other"}
    for key, seed in (("a", 0), ("again", 0), ("other", 1)):
        prepare_synthetic(out[key], n=N, image_size=SIZE, seed=seed)
    return out


def all_rows(root: Path):
    info = read_dataset_info(root)
    return info, [(split, s) for split in SPLITS for s in read_split(root, split, info)]


def test_counts_classes_and_parts(datasets):
    info, rows = all_rows(datasets["a"])
    assert len(rows) == N
    assert len(info.classes) >= 4
    per_class = Counter(p.cls for p in info.parts)
    assert set(per_class) == set(info.classes) and all(2 <= k <= 5 for k in per_class.values())
    assert all(p.name.startswith(f"{p.cls}/") for p in info.parts)
    assert Counter(s.label for _, s in rows) == {c: N // len(info.classes) for c in range(len(info.classes))}
    for split in SPLITS:
        assert all(info.counts[split][c] > 0 for c in info.classes), split
    assert info.source["command"] == "prepare synthetic"
    assert (info.source["n"], info.source["image_size"], info.source["seed"]) == (N, SIZE, 0)


def test_masks_hold_only_own_class_parts(datasets):
    root = datasets["a"]
    info, rows = all_rows(root)
    part_class = info.part_to_class()
    for _, s in rows:
        assert s.mask_source == "gt"
        with Image.open(root / s.image) as im:
            assert im.mode == "RGB" and im.size == (SIZE, SIZE)
        mask = np.array(Image.open(root / s.mask))
        assert mask.dtype == np.uint8 and mask.shape == (SIZE, SIZE)
        ids = set(np.unique(mask).tolist()) - {0}
        assert ids and all(1 <= i <= info.num_parts and part_class[i - 1] == s.label for i in ids), s.mask
        assert 0.02 < (mask > 0).mean() < 0.6, s.mask


def test_same_seed_same_bytes_other_seed_differs(datasets):
    a, again, other = datasets["a"], datasets["again"], datasets["other"]
    for split in SPLITS:
        assert (a / f"{split}.csv").read_bytes() == (again / f"{split}.csv").read_bytes()
    _, rows = all_rows(a)
    for _, s in rows[:5]:
        assert (a / s.image).read_bytes() == (again / s.image).read_bytes()
        assert (a / s.mask).read_bytes() == (again / s.mask).read_bytes()
    _, other_rows = all_rows(other)
    by_stem = {Path(s.image).stem: s for _, s in other_rows}
    differ = [(a / s.image).read_bytes() != (other / by_stem[Path(s.image).stem].image).read_bytes() for _, s in rows]
    assert all(differ)


def test_sample_depends_only_on_seed_and_index(datasets):
    root = datasets["a"]
    _, rows = all_rows(root)
    split, s = rows[-1]
    index = int(Path(s.image).stem)
    image, mask = render_sample(np.random.default_rng([0, index]), s.label, SIZE)
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(root / s.image)))
    assert np.array_equal(mask, np.asarray(Image.open(root / s.mask)))


def test_loader_reads_it(datasets):
    ds = PreparedDataset(datasets["a"], "train")
    image, mask, label, has_mask = ds[0]
    assert len(ds) == sum(ds.info.counts["train"].values()) > N // 2
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
    assert mask.shape == (SIZE, SIZE) and 0 <= int(mask.max()) <= ds.info.num_parts
    assert has_mask and 0 <= label < ds.info.num_classes


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [({"n": 29}, "--n"), ({"n": 0}, "--n"), ({"image_size": 8}, "--image-size"), ({"seed": -1}, "--seed"),
     ({"n": 100, "n_test": 52}, "--n-test"), ({"n": 100, "n_val": 0}, "--n-val"),
     ({"n": 100, "n_test": 60}, "--n")],  # 100 - 60 - 10 leaves 6 per class for training, fewer than 8
)
def test_bad_options(tmp_path, kwargs, option):
    with pytest.raises(PartcliError, match=f"^{option} "):
        prepare_synthetic(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_split_sizes_give_the_requested_count_per_class(tmp_path):
    info = prepare_synthetic(tmp_path / "a", n=120, image_size=16, seed=3, n_test=50)
    assert info.counts["test"] == {c: 10 for c in info.classes}
    assert info.counts["val"] == {c: 2 for c in info.classes}  # the default 10 % of --n
    assert info.counts["train"] == {c: 12 for c in info.classes}
    info = prepare_synthetic(tmp_path / "b", n=120, image_size=16, seed=3, n_val=25, n_test=35)
    assert (info.counts["val"], info.counts["test"]) == ({c: 5 for c in info.classes}, {c: 7 for c in info.classes})
    rows = {split: {s.image for s in read_split(tmp_path / "b", split, info)} for split in SPLITS}
    assert sum(map(len, rows.values())) == 120 and not rows["train"] & rows["test"]
    assert (info.source["n_val"], info.source["n_test"]) == (25, 35)


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(PartcliError, match="--overwrite"):
        prepare_synthetic(out, n=40, image_size=16)
    (out / "dataset.yaml").write_text("# an earlier dataset\n")  # --overwrite replaces only a prepared dataset
    info = prepare_synthetic(out, n=40, image_size=16, overwrite=True)
    assert sum(sum(c.values()) for c in info.counts.values()) == 40 and not (out / "keep.txt").exists()


def nearest_centroid_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    z = (features - features.mean(0)) / (features.std(0) + 1e-9)
    centroids = np.stack([z[labels == c].mean(0) for c in range(len(CLASSES))])
    pred = np.argmin(((z[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    return float((pred == labels).mean())


def test_silhouette_predicts_class_and_colour_is_only_a_weak_cue():
    """The object's binary outline (no part ids) identifies the class; its mean colour only weakly (role shares)."""
    shape, colour, labels = [], [], []
    for i in range(300):
        cls = i % len(CLASSES)
        image, mask = render_sample(np.random.default_rng([3, i]), cls, SIZE)
        ys, xs = np.nonzero(mask)
        h, w = np.ptp(ys) + 1, np.ptp(xs) + 1
        shape.append([np.log(h / w), len(ys) / (h * w), (ys.mean() - ys.min()) / h])
        colour.append(np.asarray(image, dtype=float)[mask > 0].mean(0))
        labels.append(cls)
    labels = np.array(labels)
    chance = 1 / len(CLASSES)
    shape_acc, colour_acc = (nearest_centroid_accuracy(np.array(f), labels) for f in (shape, colour))
    assert shape_acc > 3.5 * chance
    assert colour_acc < 0.6 and colour_acc < shape_acc - 0.15, (shape_acc, colour_acc)


def test_every_class_has_every_role_and_parts_take_their_roles_hue():
    """Parts look alike by role across classes (generator version 2): no hue band belongs to one class."""
    assert all(set(roles) == set(ROLE_HUES) for roles in PART_ROLES.values())
    assert [len(PART_ROLES[c]) for c in CLASSES] == [len(CLASS_PARTS[c]) for c in CLASSES]
    for cls in range(len(CLASSES)):
        image, mask = render_sample(np.random.default_rng([5, cls]), cls, 64)
        hsv = np.asarray(Image.fromarray(np.asarray(image)).convert("HSV"), dtype=float) / 255
        for offset, role in enumerate(PART_ROLES[CLASSES[cls]]):
            pixels = hsv[mask == first_part_id(cls) + offset]
            if len(pixels) < 20:  # a part hidden behind others
                continue
            hue = np.angle(np.exp(2j * np.pi * pixels[:, 0]).mean()) / (2 * np.pi) % 1.0  # circular mean
            distance = abs((hue - ROLE_HUES[role] + 0.5) % 1.0 - 0.5)
            assert distance < HUE_JITTER + 0.03, (CLASSES[cls], role, hue)


def test_background_family_is_a_weak_class_cue():
    rng = np.random.default_rng(0)
    for cls, name in enumerate(CLASSES):
        families = Counter(pick_background(rng, cls) for _ in range(2000))
        assert set(families) == set(BACKGROUNDS)
        assert 0.55 < families[PREFERRED_BACKGROUND[name]] / 2000 < 0.65
