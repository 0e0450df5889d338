"""`prepare_pascal_part` on a tiny PASCAL-Part tree written in the official format (VOC JPEGs + .mat files)."""
from __future__ import annotations

import csv
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from PIL import Image

from helpers import run_cli
from partcli.data.contract import read_dataset_info
from partcli.data.dataset import PreparedDataset
from preparer_contract import PreparerContract
from partcli.data.prepare_pascal_part import CLASSES, PARTS, prepare_pascal_part
from partcli.errors import PartcliError

H, W = 12, 16
VOC_INDEX = {"aeroplane": 1, "bird": 3, "car": 7, "cat": 8, "chair": 9, "dog": 12, "person": 15}
PID = {f"{p.name}": i for i, p in enumerate(PARTS, start=1)}  # e.g. PID["dog/legs"] == 14


def rect(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[r0:r1, c0:c1] = 1
    return mask


def struct_array(rows: list[dict]) -> np.ndarray:
    """A 1×N MATLAB struct array, as PASCAL-Part stores `objects` and `parts`."""
    fields = list(rows[0])
    arr = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        for f in fields:
            arr[0, i][f] = row[f]
    return arr


def obj(cls: str, mask: np.ndarray, parts: list[tuple[str, np.ndarray]] | None) -> dict:
    """One object; ``parts=None`` writes MATLAB's ``[]`` (an empty double), ``[]`` an empty 1×0 struct."""
    if parts is None:
        parts_field = np.zeros((0, 0))
    elif not parts:
        parts_field = np.zeros((1, 0), dtype=[("part_name", object), ("mask", object)])
    else:
        parts_field = struct_array([{"part_name": n, "mask": m} for n, m in parts])
    return {"class": cls, "class_ind": VOC_INDEX[cls], "mask": mask, "parts": parts_field}


def write_sample(root: Path, stem: str, objects: list[dict]) -> None:
    rng = np.random.default_rng(zlib.crc32(stem.encode()))
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{stem}.jpg")
    anno = {"imname": stem, "objects": struct_array(objects)}
    scipy.io.savemat(root / "Annotations_Part" / f"{stem}.mat", {"anno": anno}, do_compression=True)


BODY = rect(2, 10, 2, 14)  # a generic object: 8×12 = 96 px
DEFAULT_PARTS = {
    "aeroplane": [("body", rect(2, 6, 2, 14)), ("lwing", rect(6, 8, 2, 14)), ("stern", rect(8, 10, 2, 8)),
                  ("engine_1", rect(8, 10, 8, 11)), ("wheel_2", rect(8, 10, 11, 14))],
    "bird": [("head", rect(2, 4, 2, 14)), ("beak", rect(4, 5, 2, 14)), ("torso", rect(5, 8, 2, 14)),
             ("lleg", rect(8, 10, 2, 14))],
    "car": [("frontside", rect(2, 4, 2, 14)), ("window_3", rect(4, 6, 2, 14)), ("door_1", rect(6, 8, 2, 14)),
            ("wheel_2", rect(8, 10, 2, 14))],
    "cat": [("head", rect(2, 4, 2, 14)), ("torso", rect(4, 8, 2, 14)), ("lfpa", rect(8, 10, 2, 8)),
            ("tail", rect(8, 10, 8, 14))],
    "dog": [("muzzle", rect(2, 4, 2, 14)), ("torso", rect(4, 8, 2, 14)), ("lfleg", rect(8, 10, 2, 14))],
}
# Images per class: 4 aeroplane/bird, 5 car (4 + the one with a small dog), 5 cat, 5 dog; + 1 skipped (person).
COUNTS = {"aeroplane": 4, "bird": 4, "car": 4, "cat": 5, "dog": 5}


def make_pascal_part(root: Path, image_dir: str = "JPEGImages", ann_dir: str = "Annotations_Part") -> Path:
    """Write the fixture; return ``root``. Special stems: see the tests below."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations_Part").mkdir(parents=True)
    for cls, n in COUNTS.items():
        for i in range(n):
            write_sample(root, f"2008_{cls}_{i}", [obj(cls, BODY, DEFAULT_PARTS[cls])])  # a single object
    # Single-part object and an unknown bird part name; parts-less objects (both empty encodings).
    write_sample(root, "2008_bird_0", [obj("bird", BODY, [("crest_1", rect(2, 4, 2, 14))])])
    write_sample(root, "2008_cat_0", [obj("cat", BODY, None), obj("bird", rect(10, 12, 0, 4), [])])
    # A car larger than a dog: labelled car; the dog's parts (on top of the car) keep dog part ids.
    write_sample(root, "2008_car_dog", [
        obj("dog", rect(0, 6, 0, 6), [("lfleg", rect(3, 6, 0, 3)), ("muzzle", rect(0, 3, 0, 3))]),
        obj("car", BODY, [("wheel_1", rect(8, 10, 2, 14)), ("leftside", rect(2, 8, 2, 14))]),
        obj("chair", rect(10, 12, 10, 16), []),
    ])
    # The largest object is a person: skipped as other_class, though a cat is present.
    write_sample(root, "2008_person", [obj("cat", rect(0, 2, 0, 4), DEFAULT_PARTS["cat"][:1]),
                                       obj("person", BODY, [("head", rect(2, 4, 2, 14))])])
    if image_dir != "JPEGImages":
        (root / image_dir).parent.mkdir(parents=True, exist_ok=True)
        (root / "JPEGImages").rename(root / image_dir)
    if ann_dir != "Annotations_Part":
        (root / ann_dir).parent.mkdir(parents=True, exist_ok=True)
        (root / "Annotations_Part").rename(root / ann_dir)
    return root


def read_rows(out: Path) -> dict[str, tuple[str, dict]]:
    """stem -> (split, CSV row)."""
    rows = {}
    for split in ("train", "val", "test"):
        with (out / f"{split}.csv").open(newline="") as fh:
            for row in csv.DictReader(fh):
                rows[Path(row["image"]).stem] = (split, row)
    return rows


def mask_of(out: Path, stem: str) -> np.ndarray:
    return np.array(Image.open(out / read_rows(out)[stem][1]["mask"]))


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_pascal_part(tmp_path / "pascal")


@pytest.fixture
def warnings(monkeypatch) -> list[str]:
    """The messages passed to ``warn`` (rich may wrap long paths when printing them)."""
    seen: list[str] = []
    monkeypatch.setattr("partcli.data.prepare_pascal_part.warn", seen.append)
    return seen


def test_labels_follow_the_largest_object(src, tmp_path):
    out = tmp_path / "out"
    info = prepare_pascal_part(src, out, seed=0)
    rows = read_rows(out)
    assert "2008_person" not in rows
    assert len(rows) == sum(COUNTS.values()) + 1
    assert int(rows["2008_car_dog"][1]["label"]) == CLASSES.index("car")
    for cls, n in COUNTS.items():
        for i in range(n):
            assert int(rows[f"2008_{cls}_{i}"][1]["label"]) == CLASSES.index(cls)
    assert info.source["skipped"] == {"missing_image": 0, "undecodable_image": 0, "bad_annotation": 0,
                                      "other_class": 1, "no_objects": 0}
    for _, row in rows.values():
        assert row["mask"] and row["mask_source"] == "gt" and row["image"].endswith(".jpg")
    assert (out / rows["2008_dog_0"][1]["image"]).read_bytes() == (src / "JPEGImages/2008_dog_0.jpg").read_bytes()


@pytest.mark.parametrize("protocol", ["authors", "largest-first"])
def test_fine_parts_merge_into_three_per_class(src, tmp_path, protocol):
    """The fixture's parts do not overlap: both protocols merge them alike."""
    out = tmp_path / "out"
    prepare_pascal_part(src, out, protocol=protocol)
    dog = mask_of(out, "2008_dog_1")
    assert dog[9, 5] == PID["dog/legs"]  # lfleg
    assert dog[3, 5] == PID["dog/head"]  # muzzle
    assert dog[6, 5] == PID["dog/body"]
    assert dog[0, 0] == 0 and dog[11, 15] == 0
    car = mask_of(out, "2008_car_1")
    assert car[9, 5] == PID["car/wheel"] and car[5, 5] == PID["car/window"] and car[7, 5] == PID["car/body"]
    cat = mask_of(out, "2008_cat_1")
    assert cat[9, 3] == PID["cat/legs"] and cat[9, 10] == PID["cat/body"] and cat[3, 3] == PID["cat/head"]
    plane = mask_of(out, "2008_aeroplane_1")
    assert [plane[9, 3], plane[9, 9], plane[9, 12], plane[7, 3]] == [PID["aeroplane/tail"], PID["aeroplane/wing"],
                                                                      PID["aeroplane/body"], PID["aeroplane/wing"]]
    bird = mask_of(out, "2008_bird_1")
    assert [bird[3, 3], bird[4, 3], bird[6, 3], bird[9, 3]] == [PID["bird/head"], PID["bird/head"],
                                                               PID["bird/body"], PID["bird/legs"]]
    # Objects without part masks stay background.
    assert not mask_of(out, "2008_cat_0").any()


@pytest.mark.parametrize("protocol, on_top", [("authors", "car/body"), ("largest-first", "dog/legs")])
def test_secondary_objects_keep_their_own_part_ids(src, tmp_path, protocol, on_top):
    out = tmp_path / "out"
    prepare_pascal_part(src, out, protocol=protocol)
    mask = mask_of(out, "2008_car_dog")
    assert mask[4, 1] == PID["dog/legs"]
    assert mask[1, 4] == 0  # in the dog's object mask but in none of its parts; outside the car
    # the dog's leg over the car's side: authors keep the main (largest) car's part, largest-first the dog's
    assert mask[4, 2] == PID[on_top] and mask[4, 3] == PID["car/body"]
    assert mask[1, 1] == PID["dog/head"]
    assert mask[9, 5] == PID["car/wheel"]  # wheel_1
    assert mask[11, 12] == 0  # chair: another class, background


def test_dataset_yaml_and_loader(src, tmp_path):
    out = tmp_path / "out"
    prepare_pascal_part(src, out, seed=3)
    doc = yaml.safe_load((out / "dataset.yaml").read_text())
    assert doc["format_version"] == 1 and doc["name"] == "pascal-part"
    assert doc["classes"] == ["aeroplane", "bird", "car", "cat", "dog"]
    assert len(doc["parts"]) == 15
    assert doc["parts"][:3] == [{"name": "aeroplane/tail", "class": "aeroplane"},
                                {"name": "aeroplane/wing", "class": "aeroplane"},
                                {"name": "aeroplane/body", "class": "aeroplane"}]
    assert [p["name"] for p in doc["parts"][12:]] == ["dog/head", "dog/legs", "dog/body"]
    assert doc["source"]["command"] == "prepare pascal-part"
    assert doc["source"]["src"] == str(src) and doc["source"]["seed"] == 3
    assert sum(sum(c.values()) for c in doc["counts"].values()) == sum(COUNTS.values()) + 1
    info = read_dataset_info(out)
    assert info.num_parts == 15 and info.part_to_class()[13] == CLASSES.index("dog")
    ds = PreparedDataset(out, "train")
    image, mask, label, has_mask = ds[0]
    assert image.shape == (3, H, W) and mask.shape == (H, W) and has_mask
    assert 0 <= int(mask.max()) <= 15 and 0 <= label < 5


def test_split_is_stratified_and_deterministic(src, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    info = prepare_pascal_part(src, a, seed=1)
    prepare_pascal_part(src, b, seed=1)
    for split in ("train", "val", "test"):
        assert (a / f"{split}.csv").read_text() == (b / f"{split}.csv").read_text()
    # Per class 80/10/10 rounded: 4 -> 3/1/0, 5 -> 4/0/1 (round half to even).
    assert info.counts["train"] == {"aeroplane": 3, "bird": 3, "car": 4, "cat": 4, "dog": 4}
    assert info.counts["val"] == {"aeroplane": 1, "bird": 1, "car": 0, "cat": 0, "dog": 0}
    assert info.counts["test"] == {"aeroplane": 0, "bird": 0, "car": 1, "cat": 1, "dog": 1}
    assignments = set()
    for seed in range(4):
        out = tmp_path / f"s{seed}"
        prepare_pascal_part(src, out, seed=seed)
        assignments.add(tuple(sorted((stem, split) for stem, (split, _) in read_rows(out).items())))
    assert len(assignments) > 1


def test_voc_devkit_layout(tmp_path):
    src = make_pascal_part(tmp_path / "p", image_dir="VOCdevkit/VOC2010/JPEGImages", ann_dir="trainval/Annotations_Part")
    info = prepare_pascal_part(src, tmp_path / "out")
    assert sum(info.counts["train"].values()) == 18


def test_missing_source_folders(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(PartcliError, match="no such folder"):
        prepare_pascal_part(tmp_path / "nope", out)
    src = make_pascal_part(tmp_path / "p")
    shutil.rmtree(src / "JPEGImages")
    with pytest.raises(PartcliError, match=r"JPEGImages.*VOCdevkit/VOC2010/JPEGImages.*VOC2010/JPEGImages"):
        prepare_pascal_part(src, out)
    src = make_pascal_part(tmp_path / "q")
    shutil.rmtree(src / "Annotations_Part")
    with pytest.raises(PartcliError, match=r"Annotations_Part.*trainval/Annotations_Part"):
        prepare_pascal_part(src, out)
    assert not out.exists()


def test_missing_image_is_counted_not_fatal(src, tmp_path, warnings):
    (src / "JPEGImages/2008_dog_2.jpg").unlink()
    info = prepare_pascal_part(src, tmp_path / "out", strict=True)
    assert info.source["skipped"]["missing_image"] == 1
    assert "2008_dog_2" not in read_rows(tmp_path / "out")
    assert any("2008_dog_2" in w for w in warnings)


def test_undecodable_image(src, tmp_path, warnings):
    (src / "JPEGImages/2008_cat_3.jpg").write_bytes(b"not a jpeg")
    info = prepare_pascal_part(src, tmp_path / "out")
    assert info.source["skipped"]["undecodable_image"] == 1
    assert any("2008_cat_3.jpg" in w for w in warnings)
    with pytest.raises(PartcliError, match="2008_cat_3.jpg"):
        prepare_pascal_part(src, tmp_path / "strict", strict=True)
    assert not (tmp_path / "strict").exists()


def test_annotation_without_anno(src, tmp_path, warnings):
    scipy.io.savemat(src / "Annotations_Part/2009_junk.mat", {"something": np.ones(3)})
    (src / "Annotations_Part/2009_broken.mat").write_bytes(b"garbage")
    write_sample(src, "2009_wrong_size", [obj("dog", np.ones((3, 3), np.uint8), [])])
    info = prepare_pascal_part(src, tmp_path / "out")
    assert info.source["skipped"]["bad_annotation"] == 3
    assert any("2009_wrong_size.mat" in w and "(3, 3)" in w for w in warnings)
    assert any("2009_junk.mat" in w and "anno" in w for w in warnings)
    with pytest.raises(PartcliError, match="2009_broken.mat|2009_junk.mat"):
        prepare_pascal_part(src, tmp_path / "strict", strict=True)
    assert not (tmp_path / "strict").exists()


def test_too_few_images_and_existing_output(src, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(PartcliError, match="--overwrite"):
        prepare_pascal_part(src, out)
    (out / "dataset.yaml").write_text("# an earlier dataset\n")  # --overwrite replaces only a prepared dataset
    prepare_pascal_part(src, out, overwrite=True)
    assert not (out / "keep.txt").exists()
    for mat in sorted((src / "Annotations_Part").glob("*.mat"))[3:]:
        mat.unlink()
    with pytest.raises(PartcliError, match="too few"):
        prepare_pascal_part(src, tmp_path / "small")
    assert not (tmp_path / "small").exists()


# ----------------------------------------------------------------- overlap protocols (authors vs largest-first)
def overlaps_within_an_object(root: Path) -> None:
    """Overlapping parts of one object, body listed last (first for the *_body_first dog)."""
    head, lfleg, torso = ("head", rect(2, 7, 2, 8)), ("lfleg", rect(6, 10, 2, 6)), ("torso", BODY)
    write_sample(root, "2008_dog_body_last", [obj("dog", BODY, [head, lfleg, torso])])
    write_sample(root, "2008_dog_body_first", [obj("dog", BODY, [torso, head, lfleg])])
    write_sample(root, "2008_aeroplane_body_last", [obj("aeroplane", BODY, [
        ("stern", rect(6, 10, 2, 6)), ("lwing", rect(4, 8, 2, 14)), ("body", BODY)])])
    write_sample(root, "2008_car_body_last", [obj("car", BODY, [
        ("wheel_1", rect(6, 10, 2, 8)), ("window_2", rect(4, 8, 2, 14)), ("door_1", BODY)])])


# (stem, pixel) -> (authors, largest-first). The pixel lies in the parts named in the comment.
WITHIN_AN_OBJECT = {
    ("2008_dog_body_last", (3, 3)): ("dog/head", "dog/body"),  # head, torso
    ("2008_dog_body_last", (6, 3)): ("dog/head", "dog/body"),  # head, lfleg, torso
    ("2008_dog_body_last", (8, 3)): ("dog/legs", "dog/body"),  # lfleg, torso
    ("2008_dog_body_last", (8, 10)): ("dog/body", "dog/body"),  # torso
    ("2008_dog_body_first", (3, 3)): ("dog/head", "dog/head"),
    ("2008_dog_body_first", (6, 3)): ("dog/head", "dog/legs"),  # head before legs, whatever the annotation order
    ("2008_dog_body_first", (8, 3)): ("dog/legs", "dog/legs"),
    ("2008_aeroplane_body_last", (7, 3)): ("aeroplane/tail", "aeroplane/body"),  # stern, lwing, body
    ("2008_aeroplane_body_last", (9, 3)): ("aeroplane/tail", "aeroplane/body"),  # stern, body
    ("2008_aeroplane_body_last", (5, 10)): ("aeroplane/wing", "aeroplane/body"),  # lwing, body
    ("2008_aeroplane_body_last", (3, 10)): ("aeroplane/body", "aeroplane/body"),
    ("2008_car_body_last", (7, 3)): ("car/wheel", "car/body"),  # wheel_1, window_2, door_1
    ("2008_car_body_last", (5, 10)): ("car/window", "car/body"),  # window_2, door_1
    ("2008_car_body_last", (3, 10)): ("car/body", "car/body"),
}


@pytest.mark.parametrize("protocol", ["authors", "largest-first"])
def test_overlapping_parts_of_one_object(src, tmp_path, protocol):
    """authors: tail > wing > body, head > legs > body, wheel > window > body, whatever the annotation order;
    largest-first: the part listed last wins."""
    overlaps_within_an_object(src)
    out = tmp_path / "out"
    prepare_pascal_part(src, out, protocol=protocol)
    column = ("authors", "largest-first").index(protocol)
    got = {key: PARTS[mask_of(out, key[0])[key[1]] - 1].name for key in WITHIN_AN_OBJECT}
    assert got == {key: expected[column] for key, expected in WITHIN_AN_OBJECT.items()}


def overlapping_objects(root: Path) -> None:
    """2008_three: a cat (48 px), the main dog (96 px, listed second) and a bird (56 px, listed last); the cat
    overlaps the dog at rows 6-7, cols 0-5 and the bird at rows 0-3, cols 2-5; the bird does not touch the dog.
    2008_tie: a cat and a dog of 48 px each, overlapping at rows 3-5, cols 4-7; the first listed is the main one."""
    write_sample(root, "2008_three", [
        obj("cat", rect(0, 8, 0, 6), [("head", rect(0, 8, 0, 6))]),
        obj("dog", rect(6, 12, 0, 16), [("torso", rect(6, 12, 0, 16))]),
        obj("bird", rect(0, 4, 2, 16), [("torso", rect(0, 4, 2, 16))]),
    ])
    write_sample(root, "2008_tie", [
        obj("cat", rect(0, 6, 0, 8), [("head", rect(0, 6, 0, 8))]),
        obj("dog", rect(3, 9, 4, 12), [("torso", rect(3, 9, 4, 12))]),
    ])


@pytest.mark.parametrize("protocol, cat_and_dog, tie", [
    ("authors", "dog/body", "cat/head"),  # the main object first, then annotation order; first part on a pixel wins
    ("largest-first", "cat/head", "dog/body"),  # largest object first, each smaller (or later equal) one over it
])
def test_overlapping_objects(src, tmp_path, protocol, cat_and_dog, tie):
    overlapping_objects(src)
    out = tmp_path / "out"
    prepare_pascal_part(src, out, protocol=protocol)
    rows = read_rows(out)
    assert int(rows["2008_three"][1]["label"]) == CLASSES.index("dog")
    mask = mask_of(out, "2008_three")
    assert mask[7, 3] == PID[cat_and_dog]
    # cat over bird under both: authors paint the cat first (listed first), largest-first paint it last (smaller)
    assert mask[2, 3] == PID["cat/head"]
    assert mask[2, 8] == PID["bird/body"] and mask[1, 0] == PID["cat/head"] and mask[10, 10] == PID["dog/body"]
    assert int(rows["2008_tie"][1]["label"]) == CLASSES.index("cat")  # first of equal areas
    assert mask_of(out, "2008_tie")[4, 5] == PID[tie]


@pytest.mark.parametrize("protocol, bird_crest, plane_propeller, unknown, fate", [
    ("authors", "background", "background", {"aeroplane/propeller": 1, "bird/crest": 1}, "not labelled"),
    ("largest-first", "bird/body", "aeroplane/body", {"bird/crest": 1}, "labelled as body"),
])
def test_unknown_part_names(src, tmp_path, warnings, protocol, bird_crest, plane_propeller, unknown, fate):
    """authors leave a part name in no group unpainted and count it; largest-first paints it as body and counts it
    only for bird, cat and dog (aeroplane's and car's other parts are body by definition)."""
    write_sample(src, "2008_aeroplane_0", [obj("aeroplane", BODY, [
        ("body", rect(2, 6, 2, 14)), ("propeller_1", rect(6, 10, 2, 14))])])
    out = tmp_path / "out"
    info = prepare_pascal_part(src, out, protocol=protocol)
    ids = {"background": 0, **PID}
    assert mask_of(out, "2008_bird_0")[3, 3] == ids[bird_crest]  # crest_1, the bird's only part
    plane = mask_of(out, "2008_aeroplane_0")
    assert plane[3, 3] == PID["aeroplane/body"] and plane[8, 3] == ids[plane_propeller]
    assert info.source["unknown_parts"] == unknown
    assert [w for w in warnings if "grouping" in w] == [
        f"{src / 'Annotations_Part'}: part names not in partcli's grouping, {fate}: "
        + ", ".join(f"{name} ({n})" for name, n in unknown.items())]


def test_protocol_is_recorded_and_defaults_to_authors(src, tmp_path):
    prepare_pascal_part(src, tmp_path / "default")
    prepare_pascal_part(src, tmp_path / "lf", protocol="largest-first")
    assert read_dataset_info(tmp_path / "default").source["protocol"] == "authors"
    assert read_dataset_info(tmp_path / "lf").source["protocol"] == "largest-first"
    with pytest.raises(PartcliError, match=r"^--protocol 'newest': expected one of authors, largest-first$"):
        prepare_pascal_part(src, tmp_path / "bad", protocol="newest")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("args, on_top", [((), "car/body"), (("--protocol", "largest-first"), "dog/legs")])
def test_cli_protocol_option(src, tmp_path, args, on_top):
    out = tmp_path / "out"
    result = run_cli("--quiet", "prepare", "pascal-part", "--src", src, "--out", out, *args)
    assert result.code == 0, result.output
    assert read_dataset_info(out).source["protocol"] == (args[1] if args else "authors")
    assert mask_of(out, "2008_car_dog")[4, 2] == PID[on_top]


def test_cli_refuses_an_unknown_protocol(src, tmp_path):
    out = tmp_path / "out"
    result = run_cli("prepare", "pascal-part", "--src", src, "--out", out, "--protocol", "paper")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()  # one line, naming the option and its choices
    assert "--protocol" in line and "'paper'" in line and "'authors', 'largest-first'" in line
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


class TestPascalPartContract(PreparerContract):
    prepare = staticmethod(prepare_pascal_part)

    def make_source(self, root: Path) -> Path:
        return make_pascal_part(root)
