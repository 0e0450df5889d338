"""`prepare_part_imagenet` on a tiny release built here in the official layout (COCO json + JPEG folders)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from PIL import Image

from helpers import run_cli
from partcli.data.contract import SPLITS, read_dataset_info
from preparer_contract import PreparerContract
from partcli.data.prepare_part_imagenet import build_taxonomy, prepare_part_imagenet
from partcli.errors import PartcliError

H, W = 24, 32
# The release's 11 classes and their parts, in its category-id order (ids 0..39).
RELEASE_PARTS = {
    "Quadruped": ["Head", "Body", "Foot", "Tail"],
    "Biped": ["Head", "Body", "Hand", "Foot", "Tail"],
    "Fish": ["Head", "Body", "Fin", "Tail"],
    "Bird": ["Head", "Body", "Wing", "Foot", "Tail"],
    "Snake": ["Head", "Body"],
    "Reptile": ["Head", "Body", "Foot", "Tail"],
    "Car": ["Body", "Tier", "Side Mirror"],
    "Bicycle": ["Head", "Body", "Seat", "Tier"],
    "Boat": ["Body", "Sail"],
    "Aeroplane": ["Head", "Body", "Wing", "Engine", "Tail"],
    "Bottle": ["Body", "Mouth"],
}
FULL_CATEGORIES = [
    {"id": i, "name": f"{cls} {part}", "supercategory": cls}
    for i, (cls, part) in enumerate((c, p) for c, parts in RELEASE_PARTS.items() for p in parts)
]
KEPT = {"Quadruped Head", "Quadruped Body", "Fish Head", "Fish Body", "Car Body", "Car Tier"}
REDUCED_CATEGORIES = [c for c in FULL_CATEGORIES if c["name"] in KEPT]
# class -> (wnid, json split, image folder, file_name carries the wnid folder)
LAYOUT = {
    "Quadruped": ("n02085620", "train", "JPEGImages", False),
    "Fish": ("n01440764", "val", "val", True),
    "Car": ("n02814533", "test", "test", False),
}
# Reduced taxonomy: classes Car, Fish, Quadruped; parts by class then category id.
REDUCED_IDS = {"Car/Body": 1, "Car/Tier": 2, "Fish/Head": 3, "Fish/Body": 4, "Quadruped/Head": 5, "Quadruped/Body": 6}

BIG = [2, 2, 30, 2, 30, 22, 2, 22]  # polygon (x, y pairs) covering most of the image
SMALL = (slice(4, 9), slice(4, 11))  # rows, cols of the small part, drawn over the big one
BIG_PIXEL, SMALL_PIXEL = (15, 20), (6, 6)  # (row, col)


def small_mask() -> np.ndarray:
    m = np.zeros((H, W), dtype=np.uint8)
    m[SMALL] = 1
    return m


def compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths over the column-major pixels, starting with a run of zeros."""
    flat = mask.flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": [H, W], "counts": counts}


def make_release(root: Path, categories: list[dict] = REDUCED_CATEGORIES, n: int = 10) -> Path:
    """Write ``n`` images per class of LAYOUT with train/val/test.json in ``root`` and return ``root``."""
    ids = {c["name"]: c["id"] for c in categories}
    docs = {s: {"images": [], "annotations": [], "categories": categories} for s in SPLITS}
    rng = np.random.default_rng(0)
    image_id = ann_id = 0
    for cls, (wnid, split, folder, with_folder) in LAYOUT.items():
        for i in range(n):
            image_id += 1
            name = f"{wnid}_{i}.JPEG"
            path = root / folder / wnid / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path, "JPEG")
            file_name = f"{wnid}/{name}" if with_folder else name
            docs[split]["images"].append({"id": image_id, "file_name": file_name, "height": H, "width": W})
            if cls == "Car":  # small part as uncompressed RLE
                small, big = ("Car Tier", uncompressed_rle(small_mask())), "Car Body"
            else:  # small part as compressed RLE
                small, big = (f"{cls} Head", compressed_rle(small_mask())), f"{cls} Body"
            # The small part comes first in the file: authors (the later annotation wins) hide it under the big
            # one, largest-first (the larger is painted first) keep it on top.
            for cat, seg in (small, (big, [BIG])):
                ann_id += 1
                docs[split]["annotations"].append(
                    {"id": ann_id, "image_id": image_id, "category_id": ids[cat], "segmentation": seg, "iscrowd": 0}
                )
    for split, doc in docs.items():
        (root / f"{split}.json").write_text(json.dumps(doc))
    return root


def rows(out: Path, split: str) -> list[dict]:
    with (out / f"{split}.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def all_rows(out: Path) -> dict[str, dict]:
    """Stem -> CSV row (with its split) over the three splits."""
    return {Path(r["image"]).stem: {**r, "split": s} for s in SPLITS for r in rows(out, s)}


def read_mask(out: Path, row: dict) -> np.ndarray:
    return np.array(Image.open(out / row["mask"]))


def no_leftovers(out: Path) -> bool:
    return not out.exists() and not list(out.parent.glob(f".{out.name}.*"))


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return make_release(tmp_path / "PartImageNet")


@pytest.mark.parametrize("protocol", ["authors", "largest-first"])
def test_prepares_labels_masks_and_yaml(release: Path, tmp_path: Path, protocol: str):
    out = tmp_path / "out"
    info = prepare_part_imagenet(release, out, seed=0, protocol=protocol)
    assert info.classes == ["Car", "Fish", "Quadruped"]
    assert {p.name: i for i, p in enumerate(info.parts, start=1)} == REDUCED_IDS

    disk = read_dataset_info(out)
    assert disk.classes == info.classes and disk.parts == info.parts
    assert disk.name == "part-imagenet"
    assert disk.source["command"] == "prepare part-imagenet"
    assert disk.source["src"] == str(release.resolve())
    assert disk.source["seed"] == 0 and disk.source["strict"] is False and disk.source["protocol"] == protocol
    assert disk.source["skipped"] == {
        "missing_image": 0, "undecodable_image": 0, "no_annotation": 0, "mixed_class": 0, "bad_annotation": 0,
        "zero_area": 0,
    }
    # 10 images per class -> 8/1/1 per class
    assert disk.counts == {
        "train": {"Car": 8, "Fish": 8, "Quadruped": 8},
        "val": {"Car": 1, "Fish": 1, "Quadruped": 1},
        "test": {"Car": 1, "Fish": 1, "Quadruped": 1},
    }

    samples = all_rows(out)
    assert len(samples) == 30
    for cls, (wnid, _, folder, _) in LAYOUT.items():
        row = samples[f"{wnid}_3"]
        assert int(row["label"]) == info.classes.index(cls)
        assert row["mask_source"] == "gt"
        # original bytes, suffix lower-cased
        assert row["image"].endswith(".jpeg")
        assert (out / row["image"]).read_bytes() == (release / folder / wnid / f"{wnid}_3.JPEG").read_bytes()
        mask = read_mask(out, row)
        assert mask.dtype == np.uint8 and mask.shape == (H, W)
        small_part, big_part = ("Car/Tier", "Car/Body") if cls == "Car" else (f"{cls}/Head", f"{cls}/Body")
        assert mask[BIG_PIXEL] == REDUCED_IDS[big_part]  # polygon pixel
        assert mask[0, 0] == 0 and mask[H - 1, W - 1] == 0  # background
        if protocol == "authors":  # the polygon, later in the json, covers the RLE box
            assert not (mask == REDUCED_IDS[small_part]).any() and mask[SMALL_PIXEL] == REDUCED_IDS[big_part]
        else:  # the RLE box, the smaller region, lies on top; it decodes exactly: all of the box and nothing else
            assert (mask == REDUCED_IDS[small_part]).sum() == small_mask().sum()
            assert np.all(mask[SMALL] == REDUCED_IDS[small_part])


def test_loader_reads_the_result(release: Path, tmp_path: Path):
    from partcli.data.dataset import PreparedDataset

    out = tmp_path / "out"
    prepare_part_imagenet(release, out)
    ds = PreparedDataset(out, "train")
    assert len(ds) == 24
    image, mask, label, has_mask = ds[0]
    assert tuple(image.shape) == (3, H, W) and tuple(mask.shape) == (H, W)
    assert has_mask and 0 <= label < 3
    assert 0 < int(mask.max()) <= ds.info.num_parts


@pytest.mark.parametrize("protocol", ["authors", "largest-first"])  # they agree on an id-sorted list
def test_full_category_list_gives_40_parts_in_11_classes(tmp_path: Path, protocol: str):
    classes, parts, part_of = build_taxonomy({tmp_path / "train.json": {"categories": FULL_CATEGORIES}}, protocol)
    assert classes == sorted(RELEASE_PARTS) == [
        "Aeroplane", "Bicycle", "Biped", "Bird", "Boat", "Bottle", "Car", "Fish", "Quadruped", "Reptile", "Snake",
    ]
    assert len(parts) == 40
    assert {c: sum(p.cls == c for p in parts) for c in classes} == {c: len(v) for c, v in RELEASE_PARTS.items()}
    assert parts[0].name == "Aeroplane/Head" and parts[-1].name == "Snake/Body"
    assert "Car/Side Mirror" in [p.name for p in parts]
    # parts are grouped by class, in class order, and within a class by category id
    assert [classes.index(p.cls) for p in parts] == sorted(classes.index(p.cls) for p in parts)
    assert [part_of[c["id"]] for c in FULL_CATEGORIES if c["supercategory"] == "Quadruped"] == [31, 32, 33, 34]


@pytest.mark.parametrize("protocol, small_pixel", [("authors", "Quadruped/Body"), ("largest-first", "Quadruped/Head")])
def test_full_release_categories_end_to_end(tmp_path: Path, protocol: str, small_pixel: str):
    """The release's 40 categories in train.json, only a subset in val/test.json: the union is used."""
    src = make_release(tmp_path / "src", categories=FULL_CATEGORIES)
    for split in ("val", "test"):
        doc = json.loads((src / f"{split}.json").read_text())
        doc["categories"] = [c for c in FULL_CATEGORIES if c["supercategory"] in ("Fish", "Car")]
        (src / f"{split}.json").write_text(json.dumps(doc))
    out = tmp_path / "out"
    info = prepare_part_imagenet(src, out, protocol=protocol)
    assert info.num_parts == 40 and info.num_classes == 11
    ids = {p.name: i for i, p in enumerate(info.parts, start=1)}
    assert ids["Quadruped/Head"] == 31 and ids["Quadruped/Body"] == 32
    row = all_rows(out)["n02085620_0"]
    assert int(row["label"]) == info.classes.index("Quadruped")
    mask = read_mask(out, row)
    assert mask[BIG_PIXEL] == ids["Quadruped/Body"] and mask[SMALL_PIXEL] == ids[small_pixel]
    assert read_dataset_info(out).counts["train"]["Bottle"] == 0


def test_split_is_deterministic_for_a_seed(release: Path, tmp_path: Path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    prepare_part_imagenet(release, a, seed=3)
    prepare_part_imagenet(release, b, seed=3)
    prepare_part_imagenet(release, c, seed=4)
    for split in SPLITS:
        assert (a / f"{split}.csv").read_bytes() == (b / f"{split}.csv").read_bytes()
    assert any((a / f"{s}.csv").read_bytes() != (c / f"{s}.csv").read_bytes() for s in SPLITS)


def test_split_proportions_per_class(tmp_path: Path):
    src = make_release(tmp_path / "src", n=20)
    info = prepare_part_imagenet(src, tmp_path / "out", seed=1)
    for cls in info.classes:
        assert [info.counts[s][cls] for s in SPLITS] == [16, 2, 2]


def test_release_layout_with_image_split_folders_and_annotations_folder(release: Path, tmp_path: Path):
    """Images under train/<wnid>/ instead of JPEGImages/<wnid>/, json files under annotations/."""
    (release / "JPEGImages").rename(release / "train")
    (release / "annotations").mkdir()
    for split in SPLITS:
        (release / f"{split}.json").rename(release / "annotations" / f"{split}.json")
    info = prepare_part_imagenet(release, tmp_path / "out")
    assert sum(info.counts["train"].values()) == 24
    assert info.source["skipped"]["missing_image"] == 0


def add_mixed_images(release: Path, n: int = 1) -> None:
    """``n`` images n02085620_9<i> in train.json with a small Fish Head (first) and a big Quadruped Body (later)."""
    doc = json.loads((release / "train.json").read_text())
    ids = {c["name"]: c["id"] for c in doc["categories"]}
    for i in range(n):
        name, image_id = f"n02085620_9{i}.JPEG", 900 + i
        Image.new("RGB", (W, H), (i, 0, 0)).save(release / "JPEGImages" / "n02085620" / name, "JPEG")
        doc["images"].append({"id": image_id, "file_name": name, "height": H, "width": W})
        doc["annotations"] += [
            {"id": 2 * image_id, "image_id": image_id, "category_id": ids["Fish Head"],
             "segmentation": compressed_rle(small_mask())},
            {"id": 2 * image_id + 1, "image_id": image_id, "category_id": ids["Quadruped Body"], "segmentation": [BIG]},
        ]
    (release / "train.json").write_text(json.dumps(doc))


def test_mixed_class_image_takes_largest_area_class_under_largest_first(release: Path, tmp_path: Path):
    add_mixed_images(release)
    out = tmp_path / "out"
    info = prepare_part_imagenet(release, out, protocol="largest-first")
    assert info.source["skipped"]["mixed_class"] == 1
    samples = all_rows(out)
    assert len(samples) == 31 and not [stem for stem in samples if "__" in stem]
    row = samples["n02085620_90"]
    assert int(row["label"]) == info.classes.index("Quadruped")
    mask = read_mask(out, row)
    assert mask[BIG_PIXEL] == REDUCED_IDS["Quadruped/Body"] and mask[SMALL_PIXEL] == REDUCED_IDS["Fish/Head"]


def test_mixed_class_image_gives_one_sample_per_class_under_authors(release: Path, tmp_path: Path):
    add_mixed_images(release, n=10)
    out = tmp_path / "out"
    info = prepare_part_imagenet(release, out)
    assert info.source["protocol"] == "authors" and info.source["skipped"]["mixed_class"] == 10
    samples = all_rows(out)
    assert len(samples) == 30 + 2 * 10
    assert sum(sum(c.values()) for c in info.counts.values()) == 50
    source_bytes = (release / "JPEGImages/n02085620/n02085620_93.JPEG").read_bytes()
    fish, quadruped = samples.pop("n02085620_93__Fish"), samples.pop("n02085620_93__Quadruped")
    assert "n02085620_93" not in samples
    assert int(fish["label"]) == info.classes.index("Fish")
    assert int(quadruped["label"]) == info.classes.index("Quadruped")
    for row in (fish, quadruped):
        assert (out / row["image"]).read_bytes() == source_bytes
        mask = read_mask(out, row)  # the same full mask: the later Quadruped Body covers the Fish Head
        assert mask[BIG_PIXEL] == mask[SMALL_PIXEL] == REDUCED_IDS["Quadruped/Body"]
    assert (out / fish["mask"]).read_bytes() == (out / quadruped["mask"]).read_bytes()
    # the two samples of an image share a split (a copy in train and one in test would leak the image)
    pairs = [(all_rows(out)[f"n02085620_9{i}__Fish"]["split"], all_rows(out)[f"n02085620_9{i}__Quadruped"]["split"])
             for i in range(10)]
    assert all(a == b for a, b in pairs) and {a for a, _ in pairs} != {"train"}


@pytest.mark.parametrize("protocol, on_top", [("authors", "Quadruped/Body"), ("largest-first", "Quadruped/Head")])
def test_an_annotation_of_json_area_0_is_skipped_by_authors(release: Path, tmp_path: Path, protocol: str, on_top: str):
    """The first image's head becomes a non-empty polygon with json area 0, listed after (and smaller than) the body
    it overlaps: both rules would paint it on top, so only the skip tells them apart."""
    doc = json.loads((release / "train.json").read_text())
    head, body = doc["annotations"][:2]
    quadruped_head = next(c["id"] for c in REDUCED_CATEGORIES if c["name"] == "Quadruped Head")
    assert (head["image_id"], head["category_id"]) == (body["image_id"], quadruped_head)
    body["area"] = 500  # a json area other than 0 is no reason to skip
    doc["annotations"] = doc["annotations"][1:] + [dict(head, segmentation=[[4, 4, 11, 4, 11, 9, 4, 9]], area=0)]
    (release / "train.json").write_text(json.dumps(doc))
    out = tmp_path / "out"
    info = prepare_part_imagenet(release, out, protocol=protocol)
    assert info.source["skipped"]["zero_area"] == (1 if protocol == "authors" else 0)
    assert info.source["skipped"]["bad_annotation"] == 0 and sum(sum(c.values()) for c in info.counts.values()) == 30
    mask = read_mask(out, all_rows(out)["n02085620_0"])
    assert mask[SMALL_PIXEL] == REDUCED_IDS[on_top] and mask[BIG_PIXEL] == REDUCED_IDS["Quadruped/Body"]


BY_ID = ["Car/Body", "Car/Tier", "Fish/Head", "Fish/Body", "Quadruped/Head", "Quadruped/Body"]  # == REDUCED_IDS
REVERSED_IN_CLASS = ["Car/Tier", "Car/Body", "Fish/Body", "Fish/Head", "Quadruped/Body", "Quadruped/Head"]


@pytest.mark.parametrize("protocol, parts", [("authors", REVERSED_IN_CLASS), ("largest-first", BY_ID)])
def test_part_order_follows_the_json_under_authors(release: Path, tmp_path: Path, protocol: str, parts: list[str]):
    """train.json lists the categories in reverse id order, val.json and test.json by id: authors take the order of
    the first file, largest-first the ids; the masks use the same part ids."""
    doc = json.loads((release / "train.json").read_text())
    doc["categories"] = sorted(REDUCED_CATEGORIES, key=lambda c: -c["id"])
    (release / "train.json").write_text(json.dumps(doc))
    out = tmp_path / "out"
    prepare_part_imagenet(release, out, protocol=protocol)
    info = read_dataset_info(out)
    assert [p.name for p in info.parts] == parts
    assert [p.cls for p in info.parts] == [name.split("/")[0] for name in parts]
    mask = read_mask(out, all_rows(out)["n01440764_0"])  # a Fish image: Body polygon, Head RLE
    assert mask[BIG_PIXEL] == parts.index("Fish/Body") + 1
    assert set(np.unique(mask)) <= {0, parts.index("Fish/Body") + 1, parts.index("Fish/Head") + 1}


@pytest.mark.parametrize("args, protocol, small_pixel", [
    ((), "authors", "Car/Body"), (("--protocol", "largest-first"), "largest-first", "Car/Tier")])
def test_cli_protocol_option(release: Path, tmp_path: Path, args: tuple, protocol: str, small_pixel: str):
    out = tmp_path / "out"
    result = run_cli("--quiet", "prepare", "part-imagenet", "--src", release, "--out", out, *args)
    assert result.code == 0, result.output
    assert read_dataset_info(out).source["protocol"] == protocol
    assert read_mask(out, all_rows(out)["n02814533_0"])[SMALL_PIXEL] == REDUCED_IDS[small_pixel]


def test_cli_refuses_an_unknown_protocol(release: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = run_cli("prepare", "part-imagenet", "--src", release, "--out", out, "--protocol", "paper")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()  # one line, naming the option and its choices
    assert "--protocol" in line and "'paper'" in line and "'authors', 'largest-first'" in line
    assert no_leftovers(out)


def test_missing_image_is_counted_not_fatal(release: Path, tmp_path: Path, capsys):
    (release / "JPEGImages" / "n02085620" / "n02085620_2.JPEG").unlink()
    info = prepare_part_imagenet(release, tmp_path / "out")
    assert info.source["skipped"]["missing_image"] == 1
    assert sum(sum(c.values()) for c in info.counts.values()) == 29
    assert "n02085620_2.JPEG" in capsys.readouterr().err


def test_image_without_annotation_is_skipped(release: Path, tmp_path: Path):
    doc = json.loads((release / "val.json").read_text())
    doc["images"].append({"id": 500, "file_name": "n01440764/n01440764_0.JPEG", "height": H, "width": W})
    doc["images"].append({"id": 501, "file_name": "n01440764_77.JPEG", "height": H, "width": W})
    (release / "val.json").write_text(json.dumps(doc))
    info = prepare_part_imagenet(release, tmp_path / "out")
    assert info.source["skipped"]["no_annotation"] == 1  # the duplicate entry merges with the annotated one
    assert sum(sum(c.values()) for c in info.counts.values()) == 30


def test_undecodable_image_skipped_or_strict_error(release: Path, tmp_path: Path):
    bad = release / "val" / "n01440764" / "n01440764_4.JPEG"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    info = prepare_part_imagenet(release, tmp_path / "out")
    assert info.source["skipped"]["undecodable_image"] == 1
    assert "n01440764_4" not in all_rows(tmp_path / "out")

    strict_out = tmp_path / "strict"
    with pytest.raises(PartcliError, match="n01440764_4.JPEG"):
        prepare_part_imagenet(release, strict_out, strict=True)
    assert no_leftovers(strict_out)


def test_missing_src_or_json_is_an_error(tmp_path: Path):
    out = tmp_path / "out"
    with pytest.raises(PartcliError, match="train.json"):
        prepare_part_imagenet(tmp_path / "nowhere", out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PartcliError, match=r"train\.json, val\.json, test\.json"):
        prepare_part_imagenet(tmp_path / "empty", out)
    assert no_leftovers(out)


@pytest.mark.parametrize("content", ['{"images": [], "annotations": []}', "[1, 2]", "{not json"])
def test_invalid_coco_file_is_an_error_naming_it(release: Path, tmp_path: Path, content: str):
    (release / "test.json").write_text(content)
    out = tmp_path / "out"
    with pytest.raises(PartcliError, match="test.json"):
        prepare_part_imagenet(release, out)
    assert no_leftovers(out)


def test_contradictory_categories_are_an_error(release: Path, tmp_path: Path):
    doc = json.loads((release / "val.json").read_text())
    doc["categories"] = [dict(c, name="Fish Tail") if c["name"] == "Fish Head" else c for c in doc["categories"]]
    (release / "val.json").write_text(json.dumps(doc))
    out = tmp_path / "out"
    with pytest.raises(PartcliError, match="category id 9"):
        prepare_part_imagenet(release, out)
    assert no_leftovers(out)


def test_existing_output_needs_overwrite(release: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(PartcliError, match="--overwrite"):
        prepare_part_imagenet(release, out)
    assert (out / "keep.txt").exists()
    (out / "dataset.yaml").write_text("# an earlier dataset\n")  # --overwrite replaces only a prepared dataset
    prepare_part_imagenet(release, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "dataset.yaml").is_file()


def test_unusable_annotations_are_ignored_and_counted(release: Path, tmp_path: Path):
    doc = json.loads((release / "train.json").read_text())
    ids = {c["name"]: c["id"] for c in doc["categories"]}
    Image.new("RGB", (W, H)).save(release / "JPEGImages" / "n02085620" / "n02085620_50.JPEG", "JPEG")
    doc["images"].append({"id": 700, "file_name": "n02085620_50.JPEG", "height": H, "width": W})
    wrong_size = dict(compressed_rle(small_mask()), size=[H + 1, W])
    bad_counts = dict(uncompressed_rle(small_mask()), counts=[5, 5])
    for i, seg in enumerate(([], [[1, 1, 5, 5]], wrong_size, bad_counts)):  # empty, degenerate polygon, mismatched RLEs
        doc["annotations"].append({"id": 700 + i, "image_id": 700, "category_id": ids["Quadruped Body"], "segmentation": seg})
    doc["annotations"].append({"id": 800, "image_id": 12345, "category_id": ids["Quadruped Body"], "segmentation": [BIG]})
    (release / "train.json").write_text(json.dumps(doc))
    info = prepare_part_imagenet(release, tmp_path / "out")
    assert info.source["skipped"]["bad_annotation"] == 5
    assert info.source["skipped"]["no_annotation"] == 1  # the image whose annotations were all unusable
    assert sum(sum(c.values()) for c in info.counts.values()) == 30


def test_one_json_is_held_at_a_time(release: Path, tmp_path: Path, monkeypatch):
    import gc
    import weakref

    import partcli.data.prepare_part_imagenet as pim

    class Doc(dict):  # a dict that can be watched with a weak reference
        pass

    alive, real_load = [], pim.load_coco

    def load(path):
        gc.collect()
        alive.append(sum(ref() is not None for ref in loaded))
        doc = Doc(real_load(path))
        loaded.append(weakref.ref(doc))
        return doc

    loaded: list[weakref.ref] = []
    monkeypatch.setattr(pim, "load_coco", load)
    out = tmp_path / "out"
    prepare_part_imagenet(release, out, seed=0)
    assert alive == [0, 0, 0]  # each json was let go before the next one was parsed
    assert sum(len(rows(out, s)) for s in SPLITS) == 30


class TestPartImageNetContract(PreparerContract):
    prepare = staticmethod(prepare_part_imagenet)

    def make_source(self, root: Path) -> Path:
        return make_release(root)
