"""``prepare_cityscapes`` on tiny Cityscapes-Panoptic-Parts folders built here in the official layout.

The first fixture (``IMAGES``) pins the ``text`` protocol, as partcli ran it before ``--protocol``; the second
(``AUTHORS_IMAGES``) pins each rule of the ``authors`` protocol with a pixel layout that the other rule decides
differently.
"""
from __future__ import annotations

import csv
import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from helpers import run_cli
from partcli.data.cityscapes_crops import Window, authors_window, crop_padded, find_candidates
from partcli.data.contract import read_dataset_info
from partcli.data.splits import stratified_split
from partcli.data.panoptic_ids import decode_uids, import_panoptic_parts
from preparer_contract import PreparerContract
from partcli.data.prepare_cityscapes import PARTS, prepare_cityscapes
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


def make_cityscapes(root: Path, encode=our_encode, images=None) -> dict[str, np.ndarray]:
    """Write a fixture's images (random RGB in 1..255, so zero padding is recognisable) and label maps, and an
    annotation without its image; ``images`` (default ``IMAGES``) maps (split, stem) to a paint list."""
    rng = np.random.default_rng(0)
    written = {}
    for (split, stem), paint in (IMAGES if images is None else images).items():
        image = rng.integers(1, 256, size=(H, W, 3), dtype=np.uint8)
        for path in (image_path(root, split, stem), label_path(root, split, stem)):
            path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(image_path(root, split, stem))
        Image.fromarray(encode(*paint_ids(paint))).save(label_path(root, split, stem))
        written[stem] = image
    # an annotation whose image is missing
    missing = label_path(root, "val", "frankfurt/frankfurt_000001_000019")
    Image.fromarray(our_encode(*paint_ids(grid_image([24], [26])))).save(missing)
    return written


@pytest.fixture(scope="module")
def src(module_tmp) -> Path:
    root = module_tmp / "src"
    make_cityscapes(root)
    return root


@pytest.fixture(scope="module")
def prepared(src, module_tmp) -> Path:
    out = module_tmp / "prepared" / "cityscapes"
    prepare_cityscapes(src, out, protocol="text", min_area=MIN_AREA, seed=3, workers=1)
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
    np.testing.assert_array_equal(crop_padded(a, Window(-1, 2, 3, 3)), [[0, 0, 0], [3, 4, 0], [7, 8, 0]])
    np.testing.assert_array_equal(crop_padded(a, Window(1, 1, 2, 2)), [[6, 7], [10, 11]])
    np.testing.assert_array_equal(crop_padded(a, Window(2, -1, 2, 3)), [[0, 9, 10], [0, 0, 0]])


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
    assert (info.source["protocol"], info.source["min_area"], info.source["pad"], info.source["seed"]) == (
        "text", MIN_AREA, 0.1, 3)
    assert info.source["skipped"] == {
        "missing_image": 1, "undecodable_image": 0, "undecodable_annotation": 0, "first_instance": 0, "small": 1,
        "occluded": 1,
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
    prepare_cityscapes(src, out, protocol="text", min_area=MIN_AREA, pad=0.0, workers=1)
    original = np.array(Image.open(image_path(src, "train", SPECIAL_STEM)))
    image, _ = crop_of(out, f"{SPECIAL_STEM}_26_000")
    assert image.shape[0] == 60
    check_crop_geometry(image, original, CAR_BOX, 0.0)


def test_min_area_and_occlusion_filters(src, tmp_path):
    info = prepare_cityscapes(src, tmp_path / "a", protocol="text", min_area=5, seed=3, workers=1)
    assert info.source["skipped"]["small"] == 0  # the 9-pixel rider now passes ...
    find_sample(tmp_path / "a", f"{SPECIAL_STEM}_25_001")
    assert info.source["skipped"]["occluded"] == 1  # ... and the hidden person is still occluded
    # 201 px: the 200-px grid persons and the hidden person become small (checked before occlusion)
    info = prepare_cityscapes(src, tmp_path / "b", protocol="text", min_area=201, seed=3, workers=1)
    assert info.source["skipped"]["small"] == 1 + 10 + 1 and info.source["skipped"]["occluded"] == 0
    assert {c: sum(info.counts[s][c] for s in info.counts) for c in info.classes} == {"human": 1, "vehicle": 11}


def test_deterministic_across_worker_counts_and_encoders(src, prepared, tmp_path):
    out = tmp_path / "two_workers"
    prepare_cityscapes(src, out, protocol="text", min_area=MIN_AREA, seed=3, workers=2)
    assert folder_files(out) == folder_files(prepared)
    # the same label maps encoded by panoptic_parts itself give the same dataset
    other = tmp_path / "pp_src"
    make_cityscapes(other, encode=pp_encode)
    for (split, stem) in IMAGES:
        assert label_path(other, split, stem).read_bytes() == label_path(src, split, stem).read_bytes()
    out_pp = tmp_path / "pp_out"
    prepare_cityscapes(other, out_pp, protocol="text", min_area=MIN_AREA, seed=3, workers=1)
    assert {k: v for k, v in folder_files(out_pp).items() if k != "dataset.yaml"} == {
        k: v for k, v in folder_files(prepared).items() if k != "dataset.yaml"
    }


def test_another_seed_changes_the_padding(src, prepared, tmp_path):
    out = tmp_path / "seed4"
    prepare_cityscapes(src, out, protocol="text", min_area=MIN_AREA, seed=4, workers=1)
    sides = lambda root: sorted(Image.open(p).size[0] for p in root.glob("images/*/*/*.png"))  # noqa: E731
    assert sides(out) != sides(prepared)


def test_loader_reads_the_result(prepared):
    from partcli.data.dataset import PreparedDataset

    ds = PreparedDataset(prepared, "train")
    assert len(ds) == 18
    image, mask, label, has_mask = ds[0]
    assert image.shape[0] == 3 and image.shape[1:] == mask.shape
    assert has_mask and label in (0, 1) and int(mask.min()) >= 0 and int(mask.max()) <= 9


# --- the authors' protocol ------------------------------------------------------------------------------

# Image "bochum_000000_000019" (train): each rule of the authors' protocol decides one object here differently
# from the text rule (and from the variants named in the comments). Paint entries as in SPECIAL.
AUTHORS = [
    # largest single other sid: person 24_001 (a bar and a line on top; box rows 2..21, cols 2..13; 83 person
    # pixels in rows 2..20, cols 2..12) with a car (35 px) and a truck (35 px) in its box: each less than half
    # its person pixels, both together more -> kept (occluded if the other class's pixels were summed)
    (PERSON, 1, 1, 2, 21, 2, 5),
    (PERSON, 1, 2, 2, 2, 6, 13),
    (CAR, 1, 5, 3, 7, 6, 12),
    (TRUCK, 1, 5, 8, 12, 6, 12),
    # person 24_002, the same shape, with one car of 49 px (> 83 / 2) in its box -> occluded
    (PERSON, 2, 1, 2, 21, 16, 19),
    (PERSON, 2, 2, 2, 2, 20, 27),
    (CAR, 2, 5, 3, 9, 20, 26),
    # own = every person pixel in the box: person 24_003 (88 px; 83 in rows 2..20, cols 30..40) with person 24_004
    # (70 px) and car 26_003 (56 px) in its box: 56 <= (83 + 70) / 2 -> kept (occluded against 88 / 2)
    (PERSON, 3, 1, 2, 21, 30, 33),
    (PERSON, 3, 2, 2, 2, 34, 41),
    (PERSON, 4, 1, 3, 12, 34, 40),
    (CAR, 3, 5, 13, 20, 34, 40),
    # the box less its last row and column: person 24_005 (a 2-px bar and one pixel top right; box rows 2..31,
    # cols 46..56; 61 px) and car 26_005 (37 px) only in the box's last column and last row -> kept (occluded by
    # any window that holds them: 37 > 61 / 2)
    (PERSON, 5, 1, 2, 31, 46, 47),
    (PERSON, 5, 2, 2, 2, 56, 56),
    (CAR, 5, 5, 3, 31, 56, 56),
    (CAR, 5, 5, 31, 31, 48, 55),
    # iid 0: car 26_000 (360 px) -> no sample
    (CAR, 0, 5, 36, 50, 2, 25),
    (CAR, 0, 1, 36, 40, 4, 23),
    # crowds: two patches of persons labelled by class only (49 px each, under MIN_AREA) are one object of
    # 98 px -> one sample; a patch of cars -> one sample
    (PERSON, -1, -1, 40, 46, 30, 36),
    (PERSON, -1, -1, 50, 56, 44, 50),
    (CAR, -1, -1, 57, 63, 2, 13),
    # car 26_006 with its parts and person 24_006 (27 px, small) in front of it
    (CAR, 6, 5, 36, 47, 96, 119),
    (CAR, 6, 1, 36, 39, 98, 117),
    (CAR, 6, 2, 45, 47, 98, 101),
    (CAR, 6, 2, 45, 47, 114, 117),
    (CAR, 6, 3, 41, 42, 96, 97),
    (CAR, 6, 4, 44, 45, 106, 109),
    (PERSON, 6, 2, 38, 39, 104, 106),
    (PERSON, 6, 1, 40, 42, 104, 106),
    (PERSON, 6, 4, 43, 46, 104, 106),
    # bus 28_002, wide and flat on the bottom edge: its crop runs past the padded image and is cut there
    (BUS, 2, 1, 59, 60, 60, 119),
    (BUS, 2, 5, 61, 63, 60, 119),
]
AUTHORS_STEM = "bochum/bochum_000000_000019"
GRID_STEMS = [("train", "aachen/aachen_000001_000019"), ("val", "frankfurt/frankfurt_000000_000294")]
AUTHORS_IMAGES = {("train", AUTHORS_STEM): AUTHORS, **{key: IMAGES[key] for key in GRID_STEMS}}
AUTHORS_SAMPLES = {"24_001", "24_003", "24_004", "24_005", "24_crowd", "26_003", "26_006", "26_crowd", "28_002"}
TEXT_SAMPLES = {"24_004", "26_000", "26_003", "26_006", "28_002"}
MARGIN = 12  # int(0.1 * max(H, W)): the authors' zero padding of every image
# part id of (sid, pid), written out from the parts list: person/rider pids 1..4, car/truck/bus pids 1..5
PART_ID = {**{(s, p): p for s in (PERSON, RIDER) for p in range(1, 5)},
           **{(s, p): 4 + p for s in (CAR, TRUCK, BUS) for p in range(1, 6)}}


@pytest.fixture(scope="module")
def authors_src(module_tmp) -> Path:
    root = module_tmp / "authors_src"
    make_cityscapes(root, images=AUTHORS_IMAGES)
    return root


@pytest.fixture(scope="module")
def authors_prepared(authors_src, module_tmp) -> Path:
    out = module_tmp / "authors_prepared"
    prepare_cityscapes(authors_src, out, min_area=MIN_AREA, seed=3, workers=1)  # the default protocol
    return out


def sample_names(out: Path, stem: str) -> set[str]:
    """The ``<sid>_<iid>`` of every sample cropped from image ``stem``."""
    name = stem.split("/")[1]
    return {r["image"].rsplit(f"{name}_", 1)[1].removesuffix(".png")
            for rows in read_rows(out).values() for r in rows if f"/{name}_" in r["image"]}


def test_authors_selects_their_objects(authors_prepared):
    info = read_dataset_info(authors_prepared)
    assert (info.source["protocol"], info.source["pad"], info.source["min_area"]) == ("authors", 0.2, MIN_AREA)
    assert sample_names(authors_prepared, AUTHORS_STEM) == AUTHORS_SAMPLES
    # grid images: every instance but the vehicles of iid 0
    assert sample_names(authors_prepared, GRID_STEMS[0][1]) == {
        "24_001", "24_002", "25_003", "24_004", "24_005", "27_001", "28_002", "26_003", "26_004"}
    assert info.source["skipped"] == {"missing_image": 1, "undecodable_image": 0, "undecodable_annotation": 0,
                                      "first_instance": 3, "small": 5, "occluded": 1}
    labels = {r["image"].rsplit("_", 2)[1]: r["label"] for rows in read_rows(authors_prepared).values() for r in rows
              if AUTHORS_STEM.split("/")[1] in r["image"]}
    assert labels == {"24": "0", "26": "1", "28": "1"}
    assert {c: sum(info.counts[s][c] for s in info.counts) for c in info.classes} == {"human": 15, "vehicle": 12}


def test_text_protocol_on_the_same_files(authors_src, tmp_path):
    info = prepare_cityscapes(authors_src, tmp_path / "text", protocol="text", min_area=MIN_AREA, seed=3,
                              workers=1)
    assert sample_names(tmp_path / "text", AUTHORS_STEM) == TEXT_SAMPLES
    assert (info.source["protocol"], info.source["pad"]) == ("text", 0.1)
    assert info.source["skipped"]["first_instance"] == 0 and info.source["skipped"]["occluded"] == 4


def padded_arrays(src: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The authors' image with its zero border, and the part id of every pixel of the padded uid map."""
    original = np.array(Image.open(image_path(src, "train", AUTHORS_STEM)))
    sids, _, pids = paint_ids(AUTHORS)
    parts = np.vectorize(lambda s, p: PART_ID.get((s, p), 0), otypes=[np.uint8])(sids, pids)
    return np.pad(original, ((MARGIN, MARGIN), (MARGIN, MARGIN), (0, 0))), np.pad(parts, MARGIN)


def authors_origins(crop: np.ndarray, padded: np.ndarray, box, pad: float = 0.2) -> tuple[int, list[tuple[int, int]]]:
    """The crop's side as the authors compute it, and every (top, left) in the padded image whose window
    ``padded[top:top + side, left:left + side]`` equals ``crop`` for a shift (rh, rw) in [0, 2 * pad * side]."""
    y0, x0, y1, x1 = box
    h, w = y1 - y0, x1 - x0
    s = max(h, w)
    side = s + 2 * int(pad * s)
    shifts = range(int(2 * pad * side) + 1)
    origins = {(max(0, y0 + MARGIN - (s - h) // 2 - rh), max(0, x0 + MARGIN - (s - w) // 2 - rw))
               for rh in shifts for rw in shifts}
    return side, sorted((t, l) for t, l in origins
                        if np.array_equal(padded[t : t + side, l : l + side], crop))


def test_authors_crop_cut_by_the_padded_border(authors_src, authors_prepared):
    padded, parts = padded_arrays(authors_src)
    image, mask = (np.array(Image.open(authors_prepared / find_sample(authors_prepared, f"{AUTHORS_STEM}_28_002")[k]))
                   for k in ("image", "mask"))
    side, origins = authors_origins(image, padded, (59, 60, 63, 119))
    assert side == 59 + 2 * 11 and len(origins) == 1  # w = 119 - 60, not the 60 pixels
    top, left = origins[0]
    assert image.shape[0] == padded.shape[0] - top < side  # cut at the padded image's bottom ...
    assert not image[-MARGIN:].any() and image[-MARGIN - 1].any()  # ... after its black border
    np.testing.assert_array_equal(mask, parts[top : top + side, left : left + side])
    # every human's and vehicle's parts: the bus's, car 26_006's (lights, wheels, plate) and person 24_006's
    assert set(np.unique(mask)) == {0, 1, 2, 4, 5, 6, 7, 8, 9}


def test_authors_crop_and_mask_of_a_car(authors_src, authors_prepared):
    padded, parts = padded_arrays(authors_src)
    row = find_sample(authors_prepared, f"{AUTHORS_STEM}_26_006")
    image, mask = (np.array(Image.open(authors_prepared / row[k])) for k in ("image", "mask"))
    side, origins = authors_origins(image, padded, (36, 96, 47, 119))
    assert side == 23 + 2 * 4 and image.shape[:2] == (side, side) and len(origins) == 1
    top, left = origins[0]
    np.testing.assert_array_equal(mask, parts[top : top + side, left : left + side])
    at = lambda y, x: int(mask[y + MARGIN - top, x + MARGIN - left])  # noqa: E731  (at an original pixel)
    assert at(38, 105) == 2 and at(44, 105) == 4  # the person in front keeps its head and legs
    assert at(46, 99) == 6 and at(37, 100) == 5 and at(43, 100) == 9  # the car's wheel, window, chassis


def test_authors_window_by_hand():
    # the bus above with no shift: side 59 + 2 * 11 = 81, centred vertically (ypad 27), cut at 64 + 12 rows
    assert authors_window((59, 60, 63, 119), (H, W), 0.2, (0.0, 0.0)) == Window(32, 60, 44, 80)
    # top-left object, largest shifts: side 19 + 2 * 3 = 25, rw = rh = int(0.39 * 25) = 9; clamped at the
    # padded image's top (12 - 5 - 9 < 0)
    assert authors_window((0, 0, 9, 19), (H, W), 0.2, (0.39, 0.39)) == Window(-12, -9, 25, 25)
    assert authors_window((5, 5, 5, 5), (H, W), 0.2, (0.3, 0.3)) == Window(5, 5, 1, 1)  # one pixel


def test_authors_output_does_not_depend_on_the_workers(authors_src, authors_prepared, tmp_path):
    prepare_cityscapes(authors_src, tmp_path / "two", min_area=MIN_AREA, seed=3, workers=2)
    assert folder_files(tmp_path / "two") == folder_files(authors_prepared)


def test_find_candidates_matches_one_mask_per_object():
    rng = np.random.default_rng(1)
    sids = rng.choice([7, 23, 24, 25, 26, 28], size=(30, 40)).astype(np.int32)
    iids = np.where(np.isin(sids, [7, 23]), -1, rng.integers(-1, 4, size=sids.shape)).astype(np.int32)
    pids = np.where(iids < 0, -1, rng.integers(-1, 6, size=sids.shape)).astype(np.int32)
    found = find_candidates(our_encode(sids, iids, pids))
    expected = []
    for sid in (24, 25, 26, 28):
        for iid in range(-1, 4):
            ys, xs = np.nonzero((sids == sid) & (iids == iid))
            if ys.size:
                expected.append((sid, iid, ys.size, (ys.min(), xs.min(), ys.max(), xs.max())))
    assert [(c.sid, c.iid, c.area, c.box) for c in found] == expected
    assert len(expected) == 20 and find_candidates(np.full((3, 4), 7, np.int32)) == []


@pytest.mark.parametrize("bad", [-1, 150, 10_000_000])
def test_find_candidates_rejects_values_outside_the_format(bad):
    with pytest.raises(ValueError):
        find_candidates(np.array([[7, bad]]))
    with pytest.raises(ValueError):
        find_candidates(np.array([[0.5]]))


def test_cli_protocols_and_info(authors_src, tmp_path):
    out = tmp_path / "authors"
    result = run_cli("prepare", "cityscapes", "--src", authors_src, "--out", out, "--min-area", MIN_AREA,
                     "--workers", 1)
    assert result.code == 0 and "27 samples" in result.output, result.output
    assert read_dataset_info(out).source["protocol"] == "authors"
    shown = run_cli("info", out)
    assert shown.code == 0 and "protocol=authors" in shown.output and "pad=0.2" in shown.output
    result = run_cli("prepare", "cityscapes", "--src", authors_src, "--out", tmp_path / "text", "--protocol", "text",
                     "--min-area", MIN_AREA, "--workers", 1)
    assert result.code == 0 and "25 samples" in result.output, result.output
    assert (read_dataset_info(tmp_path / "text").source["pad"]) == 0.1
    for bad in (["--protocol", "nosuch"], ["--pad", "-1"]):
        result = run_cli("prepare", "cityscapes", "--src", authors_src, "--out", tmp_path / "bad", *bad)
        assert result.code == 2 and bad[0] in result.err and result.err.count("\n") == 1, result.output
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad.*"))


def test_a_folder_made_before_protocol_still_loads(prepared, tmp_path):
    from partcli.data.dataset import PreparedDataset

    old = tmp_path / "old"
    shutil.copytree(prepared, old)
    doc = yaml.safe_load((old / "dataset.yaml").read_text())
    del doc["source"]["protocol"], doc["source"]["skipped"]["first_instance"]
    (old / "dataset.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    assert len(PreparedDataset(old, "train")) == 18
    assert run_cli("info", old).code == 0


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
    for kwargs, option in [({"pad": -0.1}, "--pad"), ({"pad": float("nan")}, "--pad"), ({"seed": -1}, "--seed"),
                           ({"workers": 0}, "--workers"), ({"min_area": -5}, "--min-area"),
                           ({"protocol": "paper"}, "--protocol 'paper': expected one of authors, text")]:
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
    info = prepare_cityscapes(root, tmp_path / "out", protocol="text", min_area=MIN_AREA, workers=1)
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
