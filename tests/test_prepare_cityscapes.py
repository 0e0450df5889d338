"""``prepare_cityscapes`` on tiny Cityscapes-Panoptic-Parts folders built here in the official layout."""
from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from partcli.data.contract import read_dataset_info, stratified_split
from partcli.data.panoptic_ids import decode_uids, import_panoptic_parts
from preparer_contract import PreparerContract
from partcli.data.prepare_cityscapes import PARTS, crop_padded, prepare_cityscapes
from partcli.errors import PartcliError

H, W = 64, 128
MIN_AREA = 50
ROAD, SKY, PERSON, RIDER, CAR, TRUCK, BUS = 7, 23, 24, 25, 26, 27, 28

# Image "aachen_000000_000019" (train): the special cases. Each entry paints (sid, iid, pid) on rows
# y0..y1 and columns x0..x1 (inclusive), in order, later entries over earlier ones.
SPECIAL = [
    (SKY, -1, -1, 0, 9, 0, W - 1),
    # person 24_003 (box rows 10..49, cols 10..29, area 800): head, torso, arms, legs, plus pixels
    # labelled only at instance level (24003) and void-part pixels (pid 0)
    (PERSON, 3, 2, 10, 17, 10, 29),
    (PERSON, 3, 1, 18, 31, 10, 25),
    (PERSON, 3, 3, 18, 31, 26, 29),
    (PERSON, 3, -1, 18, 31, 10, 11),
    (PERSON, 3, 0, 18, 19, 12, 13),
    (PERSON, 3, 4, 32, 49, 10, 29),
    # car 26_000 (iid 0 is Cityscapes' first instance; box rows 30..59, cols 60..119): windows, lights,
    # chassis, wheels, license plate
    (CAR, 0, 5, 30, 59, 60, 119),
    (CAR, 0, 1, 30, 37, 60, 119),
    (CAR, 0, 3, 38, 41, 60, 63),
    (CAR, 0, 2, 52, 59, 64, 75),
    (CAR, 0, 2, 52, 59, 104, 115),
    (CAR, 0, 4, 46, 49, 86, 93),
    # person 24_005 mostly hidden by the car (area 54): its crop is mostly car -> occluded
    (PERSON, 5, 1, 24, 41, 102, 104),
    # rider 25_001: 9 pixels < MIN_AREA -> small
    (RIDER, 1, 2, 2, 4, 120, 122),
    # a group of persons (semantic label only): not an instance
    (PERSON, -1, -1, 55, 63, 0, 8),
]
SPECIAL_STEM = "aachen/aachen_000000_000019"
PERSON_BOX = (10, 10, 49, 29)  # y0, x0, y1, x1
CAR_BOX = (30, 60, 59, 119)


def grid_image(human_sids: list[int], vehicle_sids: list[int]) -> list[tuple[int, int, int, int, int, int, int]]:
    """Five humans in a row at the top, five vehicles in a row below: none occludes another."""
    paint = []
    for k, sid in enumerate(human_sids):
        x = 4 + 24 * k
        paint += [(sid, k + 1, 1, 4, 23, x, x + 9), (sid, k + 1, 2, 4, 8, x, x + 9), (sid, k + 1, 4, 16, 23, x, x + 9)]
    for k, sid in enumerate(vehicle_sids):
        x = 2 + 25 * k
        paint += [(sid, k, 5, 36, 51, x, x + 21), (sid, k, 1, 36, 40, x, x + 21), (sid, k, 2, 48, 51, x + 2, x + 6)]
    return paint


IMAGES = {
    ("train", SPECIAL_STEM): SPECIAL,
    ("train", "aachen/aachen_000001_000019"): grid_image([24, 24, 25, 24, 24], [26, 27, 28, 26, 26]),
    ("val", "frankfurt/frankfurt_000000_000294"): grid_image([24, 25, 24, 24, 24], [26, 26, 27, 26, 26]),
}
N_HUMAN, N_VEHICLE = 1 + 5 + 5, 1 + 5 + 5


def our_encode(sids: np.ndarray, iids: np.ndarray, pids: np.ndarray) -> np.ndarray:
    """The panoptic-parts encoding, written from its documentation: sid, sid_iid or sid_iid_pid."""
    sids, iids, pids = (np.asarray(a, dtype=np.int64) for a in (sids, iids, pids))
    uids = np.where(iids < 0, sids, sids * 1000 + iids)
    return np.where(pids < 0, uids, uids * 100 + pids).astype(np.int32)


def pp_encode(sids: np.ndarray, iids: np.ndarray, pids: np.ndarray) -> np.ndarray:
    return import_panoptic_parts().encode_ids(*(np.asarray(a, dtype=np.int32) for a in (sids, iids, pids)))


def paint_ids(paint) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sids = np.full((H, W), ROAD, np.int32)
    iids = np.full((H, W), -1, np.int32)
    pids = np.full((H, W), -1, np.int32)
    for sid, iid, pid, y0, y1, x0, x1 in paint:
        sids[y0 : y1 + 1, x0 : x1 + 1], iids[y0 : y1 + 1, x0 : x1 + 1], pids[y0 : y1 + 1, x0 : x1 + 1] = sid, iid, pid
    return sids, iids, pids


def image_path(root: Path, split: str, stem: str) -> Path:
    return root / "leftImg8bit" / split / f"{stem}_leftImg8bit.png"


def label_path(root: Path, split: str, stem: str) -> Path:
    return root / "gtFinePanopticParts" / split / f"{stem}_gtFinePanopticParts.tif"


def make_cityscapes(root: Path, encode=our_encode) -> dict[str, np.ndarray]:
    """Write the fixture's images (random RGB in 1..255, so zero padding is recognisable) and label maps."""
    rng = np.random.default_rng(0)
    images = {}
    for (split, stem), paint in IMAGES.items():
        image = rng.integers(1, 256, size=(H, W, 3), dtype=np.uint8)
        for path in (image_path(root, split, stem), label_path(root, split, stem)):
            path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(image_path(root, split, stem))
        Image.fromarray(encode(*paint_ids(paint))).save(label_path(root, split, stem))
        images[stem] = image
    # an annotation whose image is missing
    missing = label_path(root, "val", "frankfurt/frankfurt_000001_000019")
    Image.fromarray(our_encode(*paint_ids(grid_image([24], [26])))).save(missing)
    return images


@pytest.fixture(scope="module")
def src(module_tmp) -> Path:
    root = module_tmp / "src"
    make_cityscapes(root)
    return root


@pytest.fixture(scope="module")
def prepared(src, module_tmp) -> Path:
    out = module_tmp / "prepared" / "cityscapes"
    prepare_cityscapes(src, out, min_area=MIN_AREA, seed=3, workers=1)
    return out


def read_rows(out: Path) -> dict[str, list[dict[str, str]]]:
    rows = {}
    for split in ("train", "val", "test"):
        with (out / f"{split}.csv").open(newline="") as fh:
            rows[split] = list(csv.DictReader(fh))
    return rows


def find_sample(out: Path, stem: str) -> dict[str, str]:
    hits = [r for rows in read_rows(out).values() for r in rows if r["image"].endswith(f"/{stem}.png")]
    assert len(hits) == 1, stem
    return hits[0]


def folder_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- uid decoding -------------------------------------------------------------------------------------


def test_decode_uids_matches_panoptic_parts():
    pp = import_panoptic_parts()
    grid = [
        (s, i, p)
        for s, i, p in itertools.product([0, 1, 7, 23, 24, 26, 99], [-1, 0, 1, 3, 10, 999], [-1, 0, 1, 2, 5, 99])
        if (i >= 0 or p < 0) and (s > 0 or i < 0)  # a pid needs an iid; an iid needs a sid > 0
    ]
    grid = grid[: len(grid) // 4 * 4]  # as a 2-D array
    sids, iids, pids = (np.array(col, dtype=np.int32).reshape(-1, 4) for col in zip(*grid, strict=True))
    uids = pp.encode_ids(sids, iids, pids)
    np.testing.assert_array_equal(our_encode(sids, iids, pids), uids)
    ours, theirs = decode_uids(uids), pp.decode_uids(uids)
    for mine, ref in zip(ours, theirs, strict=True):
        assert mine.dtype == np.int32 and mine.shape == uids.shape
        np.testing.assert_array_equal(mine, ref)
    # their convention: a pid 0 stays 0 (void part), -1 means "no part level"; iid -1 "no instance level"
    np.testing.assert_array_equal(ours[0], sids)
    np.testing.assert_array_equal(ours[1], iids)
    np.testing.assert_array_equal(ours[2], np.where(iids < 0, -1, pids))
    for mine, ref in zip(decode_uids(uids.astype(np.int64)), theirs, strict=True):  # any integer dtype
        np.testing.assert_array_equal(mine, ref)
    assert [int(a) for a in decode_uids(np.array(2300304))] == [23, 3, 4]


@pytest.mark.parametrize("bad", [-1, 150, 999, 10_000_000])
def test_decode_uids_rejects_values_outside_the_format(bad):
    with pytest.raises(ValueError):
        decode_uids(np.array([7, bad]))
    with pytest.raises(ValueError):
        decode_uids(np.array([0.5]))


def test_crop_padded_fills_outside_with_zeros():
    a = np.arange(1, 13).reshape(3, 4)
    np.testing.assert_array_equal(crop_padded(a, -1, 2, 3), [[0, 0, 0], [3, 4, 0], [7, 8, 0]])
    np.testing.assert_array_equal(crop_padded(a, 1, 1, 2), [[6, 7], [10, 11]])


# --- preparation ----------------------------------------------------------------------------------------


def test_samples_labels_and_counts(prepared):
    info = read_dataset_info(prepared)
    assert info.name == "cityscapes"
    assert info.classes == ["human", "vehicle"]
    assert [(p.name, p.cls) for p in info.parts] == [
        ("torso", "human"), ("head", "human"), ("arms", "human"), ("legs", "human"),
        ("windows", "vehicle"), ("wheels", "vehicle"), ("lights", "vehicle"), ("license plate", "vehicle"),
        ("chassis", "vehicle"),
    ]
    assert info.parts == PARTS
    assert info.source["command"] == "prepare cityscapes"
    assert (info.source["min_area"], info.source["pad"], info.source["seed"]) == (MIN_AREA, 0.1, 3)
    assert info.source["skipped"] == {
        "missing_image": 1, "undecodable_image": 0, "undecodable_annotation": 0, "small": 1, "occluded": 1,
    }
    rows = read_rows(prepared)
    labels = [int(r["label"]) for split in rows.values() for r in split]
    assert sorted(labels) == [0] * N_HUMAN + [1] * N_VEHICLE
    assert all(r["mask"] and r["mask_source"] == "gt" for split in rows.values() for r in split)
    names = {r["image"].split("/", 2)[2] for split in rows.values() for r in split}
    assert f"{SPECIAL_STEM}_24_003.png" in names and f"{SPECIAL_STEM}_26_000.png" in names
    assert f"{SPECIAL_STEM}_24_005.png" not in names  # occluded
    assert f"{SPECIAL_STEM}_25_001.png" not in names  # small
    assert "aachen/aachen_000001_000019_27_001.png" in names  # a truck
    # stratified 80/10/10 per class, as stratified_split assigns it
    expected = {s: {c: 0 for c in info.classes} for s in ("train", "val", "test")}
    pooled = [0] * N_HUMAN + [1] * N_VEHICLE
    for label, split in zip(pooled, stratified_split(pooled, 3), strict=True):
        expected[split][info.classes[label]] += 1
    assert info.counts == expected
    assert info.counts["train"] == {"human": 9, "vehicle": 9}


def crop_of(prepared: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    row = find_sample(prepared, stem)
    image = np.array(Image.open(prepared / row["image"]))
    mask = np.array(Image.open(prepared / row["mask"]))
    assert image.ndim == 3 and image.shape[:2] == mask.shape and mask.shape[0] == mask.shape[1]
    return image, mask


def check_crop_geometry(crop: np.ndarray, original: np.ndarray, box, pad: float) -> tuple[int, int]:
    """The crop is a square around ``box`` within the padding bounds, holding the original pixels."""
    y0, x0, y1, x1 = box
    h, w = y1 - y0 + 1, x1 - x0 + 1
    side = crop.shape[0]
    assert max(h, w) <= side <= round(max(h, w) * (1 + pad))
    top, left = y0 + (h - side) // 2, x0 + (w - side) // 2
    expected = np.zeros_like(crop)
    ys, xs = slice(max(top, 0), min(top + side, H)), slice(max(left, 0), min(left + side, W))
    expected[ys.start - top : ys.stop - top, xs.start - left : xs.stop - left] = original[ys, xs]
    np.testing.assert_array_equal(crop, expected)
    return top, left


def test_person_crop_geometry_and_parts(src, prepared):
    original = np.array(Image.open(image_path(src, "train", SPECIAL_STEM)))
    image, mask = crop_of(prepared, f"{SPECIAL_STEM}_24_003")
    top, left = check_crop_geometry(image, original, PERSON_BOX, 0.1)
    at = lambda y, x: int(mask[y - top, x - left])  # noqa: E731  (mask value at an original pixel)
    assert at(12, 15) == 2  # uid 24_003_02 -> part 2 "human/head"
    assert at(20, 20) == 1 and at(25, 27) == 3 and at(40, 15) == 4  # torso, arms, legs
    assert at(25, 10) == 0  # instance pixel without a part label (uid 24003)
    assert at(18, 12) == 0  # void part (pid 0)
    assert set(np.unique(mask)) == {0, 1, 2, 3, 4}
    assert np.count_nonzero(mask) == 800 - 14 * 2 - 2 * 2


def test_car_crop_zero_padding_and_parts(src, prepared):
    original = np.array(Image.open(image_path(src, "train", SPECIAL_STEM)))
    image, mask = crop_of(prepared, f"{SPECIAL_STEM}_26_000")
    top, left = check_crop_geometry(image, original, CAR_BOX, 0.1)
    assert top + image.shape[0] > H  # the square leaves the frame at the bottom ...
    assert not image[H - top :].any() and not mask[H - top :].any()  # ... and is zero-padded there
    at = lambda y, x: int(mask[y - top, x - left])  # noqa: E731
    assert at(32, 80) == 5 and at(55, 70) == 6 and at(40, 61) == 7 and at(47, 90) == 8 and at(45, 80) == 9
    assert at(35, 103) == 0  # the occluding person's pixels belong to another instance
    assert at(20, 80) == 0  # sky
    assert set(np.unique(mask)) == {0, 5, 6, 7, 8, 9}


def test_crop_without_padding_is_the_tight_square(src, tmp_path):
    out = tmp_path / "out"
    prepare_cityscapes(src, out, min_area=MIN_AREA, pad=0.0, workers=1)
    original = np.array(Image.open(image_path(src, "train", SPECIAL_STEM)))
    image, _ = crop_of(out, f"{SPECIAL_STEM}_26_000")
    assert image.shape[0] == 60
    check_crop_geometry(image, original, CAR_BOX, 0.0)


def test_min_area_and_occlusion_filters(src, tmp_path):
    info = prepare_cityscapes(src, tmp_path / "a", min_area=5, seed=3, workers=1)
    assert info.source["skipped"]["small"] == 0  # the 9-pixel rider now passes ...
    find_sample(tmp_path / "a", f"{SPECIAL_STEM}_25_001")
    assert info.source["skipped"]["occluded"] == 1  # ... and the hidden person is still occluded
    # 201 px: the 200-px grid persons and the hidden person become small (checked before occlusion)
    info = prepare_cityscapes(src, tmp_path / "b", min_area=201, seed=3, workers=1)
    assert info.source["skipped"]["small"] == 1 + 10 + 1 and info.source["skipped"]["occluded"] == 0
    assert {c: sum(info.counts[s][c] for s in info.counts) for c in info.classes} == {"human": 1, "vehicle": 11}


def test_deterministic_across_worker_counts_and_encoders(src, prepared, tmp_path):
    out = tmp_path / "two_workers"
    prepare_cityscapes(src, out, min_area=MIN_AREA, seed=3, workers=2)
    assert folder_files(out) == folder_files(prepared)
    # the same label maps encoded by panoptic_parts itself give the same dataset
    other = tmp_path / "pp_src"
    make_cityscapes(other, encode=pp_encode)
    for (split, stem) in IMAGES:
        assert label_path(other, split, stem).read_bytes() == label_path(src, split, stem).read_bytes()
    out_pp = tmp_path / "pp_out"
    prepare_cityscapes(other, out_pp, min_area=MIN_AREA, seed=3, workers=1)
    assert {k: v for k, v in folder_files(out_pp).items() if k != "dataset.yaml"} == {
        k: v for k, v in folder_files(prepared).items() if k != "dataset.yaml"
    }


def test_another_seed_changes_the_padding(src, prepared, tmp_path):
    out = tmp_path / "seed4"
    prepare_cityscapes(src, out, min_area=MIN_AREA, seed=4, workers=1)
    sides = lambda root: sorted(Image.open(p).size[0] for p in root.glob("images/*/*/*.png"))  # noqa: E731
    assert sides(out) != sides(prepared)


def test_loader_reads_the_result(prepared):
    from partcli.data.dataset import PreparedDataset

    ds = PreparedDataset(prepared, "train")
    assert len(ds) == 18
    image, mask, label, has_mask = ds[0]
    assert image.shape[0] == 3 and image.shape[1:] == mask.shape
    assert has_mask and label in (0, 1) and int(mask.min()) >= 0 and int(mask.max()) <= 9


# --- bad input ------------------------------------------------------------------------------------------


def no_output(tmp_path: Path) -> bool:
    return not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_missing_src_or_folders(tmp_path):
    with pytest.raises(PartcliError, match="not a folder"):
        prepare_cityscapes(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "src" / "leftImg8bit").mkdir(parents=True)
    with pytest.raises(PartcliError, match="gtFinePanopticParts: missing"):
        prepare_cityscapes(tmp_path / "src", tmp_path / "out")
    (tmp_path / "src" / "gtFinePanopticParts").mkdir()
    with pytest.raises(PartcliError, match="no \\*/\\*_gtFinePanopticParts.tif"):
        prepare_cityscapes(tmp_path / "src", tmp_path / "out")
    assert no_output(tmp_path)


def test_bad_options(src, tmp_path):
    for kwargs, option in [({"pad": -0.1}, "--pad"), ({"seed": -1}, "--seed"), ({"workers": 0}, "--workers"),
                           ({"min_area": -5}, "--min-area")]:
        with pytest.raises(PartcliError, match=option):
            prepare_cityscapes(src, tmp_path / "out", **kwargs)
    assert no_output(tmp_path)


def test_no_surviving_instance(src, tmp_path):
    with pytest.raises(PartcliError, match="--min-area"):
        prepare_cityscapes(src, tmp_path / "out", min_area=10**6, workers=1)
    assert no_output(tmp_path)


def test_undecodable_image_skipped_or_refused(tmp_path):
    root = tmp_path / "src"
    make_cityscapes(root)
    stem = "frankfurt/frankfurt_000002_000019"
    image_path(root, "val", stem).write_bytes(b"not a png")
    Image.fromarray(our_encode(*paint_ids(grid_image([24], [26])))).save(label_path(root, "val", stem))
    with pytest.raises(PartcliError, match="frankfurt_000002_000019_leftImg8bit.png: image does not decode"):
        prepare_cityscapes(root, tmp_path / "out", min_area=MIN_AREA, strict=True, workers=2)
    assert no_output(tmp_path)
    info = prepare_cityscapes(root, tmp_path / "out", min_area=MIN_AREA, workers=1)
    assert info.source["skipped"]["undecodable_image"] == 1
    assert info.source["skipped"]["missing_image"] == 1
    assert sum(sum(c.values()) for c in info.counts.values()) == N_HUMAN + N_VEHICLE


def test_undecodable_annotation_skipped(tmp_path):
    root = tmp_path / "src"
    make_cityscapes(root)
    stem = "frankfurt/frankfurt_000002_000019"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(image_path(root, "val", stem))
    Image.fromarray(np.full((H, W), 500, np.int32)).save(label_path(root, "val", stem))  # 3-digit uids
    info = prepare_cityscapes(root, tmp_path / "out", min_area=MIN_AREA, workers=1)
    assert info.source["skipped"]["undecodable_annotation"] == 1


class TestCityscapesContract(PreparerContract):
    prepare = staticmethod(prepare_cityscapes)
    options = {"min_area": MIN_AREA, "workers": 1}

    def make_source(self, root: Path) -> Path:
        make_cityscapes(root)
        return root
