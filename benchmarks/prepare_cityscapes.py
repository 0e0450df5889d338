"""Throughput of ``partcli prepare cityscapes`` on synthetic full-size Cityscapes-Panoptic-Parts files.

Writes ``--files`` synthetic 2048×1024 images in the official layout (``leftImg8bit/{train,val}/<city>/`` PNGs
and ``gtFinePanopticParts/{train,val}/<city>/`` int32 TIFFs): sky, buildings, vegetation, road and sidewalk,
8–12 persons, riders, cars, trucks and buses with their parts (some of them small or hidden behind others),
and groups of persons or cars labelled only by class. Then runs the preparer (``--protocol``, default authors)
once per ``--workers`` count, prints files/s, samples/s and the time projected for the full release (3,475
files), and checks that every worker count wrote byte-identical datasets. Run it on an otherwise idle machine;
with few files the worker processes' start weighs on the projection.

    python benchmarks/prepare_cityscapes.py --files 24 --workers 1 2 --root /tmp/cityscapes-bench
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from partcli.data.cityscapes_crops import PROTOCOLS
from partcli.data.prepare_cityscapes import prepare_cityscapes
from partcli.progress import set_quiet

H, W = 1024, 2048
FULL_RELEASE = 3475  # annotation files of Cityscapes-Panoptic-Parts, train + val
CITIES = ("aachen", "bochum", "frankfurt")
SKY, BUILDING, VEGETATION, ROAD, SIDEWALK = 23, 11, 21, 7, 8
PERSON, RIDER, CAR, TRUCK, BUS = 24, 25, 26, 27, 28
COLOURS = {SKY: (110, 150, 200), BUILDING: (120, 110, 100), VEGETATION: (70, 110, 50), ROAD: (90, 85, 95),
           SIDEWALK: (150, 130, 140), PERSON: (160, 60, 60), RIDER: (170, 40, 40), CAR: (40, 40, 140),
           TRUCK: (40, 70, 90), BUS: (40, 90, 110)}


def paint(uids: np.ndarray, sid: int, iid: int, pid: int, y0: int, y1: int, x0: int, x1: int) -> None:
    """Set rows y0..y1-1, columns x0..x1-1 (clipped to the image) to the uid of (sid, iid, pid); -1: no level."""
    uid = sid if iid < 0 else (sid * 1000 + iid if pid < 0 else (sid * 1000 + iid) * 100 + pid)
    uids[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = uid


def paint_person(uids: np.ndarray, sid: int, iid: int, y: int, x: int, height: int) -> None:
    """A person seen from the front, its feet at row y, centred on column x: legs, torso, arms, head."""
    width = max(height * 2 // 5, 4)
    left, top = x - width // 2, y - height
    paint(uids, sid, iid, 0, top, y, left + width // 4, left + 3 * width // 4)  # void part between the limbs
    paint(uids, sid, iid, 4, y - height // 2, y, left + width // 5, left + 9 * width // 20)
    paint(uids, sid, iid, 4, y - height // 2, y, left + 11 * width // 20, left + 4 * width // 5)
    paint(uids, sid, iid, 1, top + height // 6, y - height // 2, left + width // 5, left + 4 * width // 5)
    paint(uids, sid, iid, 3, top + height // 6, y - height // 3, left, left + width // 5)
    paint(uids, sid, iid, 3, top + height // 6, y - height // 3, left + 4 * width // 5, left + width)
    paint(uids, sid, iid, 2, top, top + height // 6, left + width // 3, left + 2 * width // 3)


def paint_vehicle(uids: np.ndarray, sid: int, iid: int, y: int, x: int, width: int) -> None:
    """A vehicle seen from behind, its wheels on row y, centred on column x: chassis, windows, wheels, lights, plate."""
    height = width * (3 if sid == CAR else 5) // 5
    left, top = x - width // 2, y - height
    paint(uids, sid, iid, 5, top, y - height // 8, left, left + width)
    paint(uids, sid, iid, 1, top + height // 10, top + 2 * height // 5, left + width // 8, left + 7 * width // 8)
    for wheel in (left + width // 12, left + 3 * width // 4):
        paint(uids, sid, iid, 2, y - height // 5, y, wheel, wheel + width // 6)
    for light in (left + width // 20, left + 17 * width // 20):
        paint(uids, sid, iid, 3, top + height // 2, top + 3 * height // 5, light, light + width // 10)
    paint(uids, sid, iid, 4, top + 7 * height // 10, top + 4 * height // 5, x - width // 10, x + width // 10)
    paint(uids, sid, iid, -1, top, top + height // 12, left, left + width)  # instance-level pixels only


def synthetic_scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One street scene: (RGB image H×W×3 uint8, panoptic-parts uid map H×W int32)."""
    uids = np.full((H, W), ROAD, np.int32)
    horizon = int(rng.integers(350, 500))
    uids[: horizon - 150] = SKY
    uids[horizon - 150 : horizon] = BUILDING
    for _ in range(3):
        x = int(rng.integers(0, W - 300))
        paint(uids, VEGETATION, -1, -1, horizon - 250, horizon + 20, x, x + int(rng.integers(100, 300)))
    paint(uids, SIDEWALK, -1, -1, horizon, horizon + 80, 0, W)
    if rng.random() < 0.6:  # a group of persons or of cars labelled by class only
        x, sid = int(rng.integers(0, W - 300)), int(rng.choice([PERSON, CAR]))
        paint(uids, sid, -1, -1, horizon - 60, horizon + 30, x, x + int(rng.integers(60, 300)))
    next_iid: dict[int, int] = {}
    n_objects = int(rng.integers(8, 13))
    depths = np.sort(rng.uniform(0.1, 1.0, n_objects) ** 2)  # mostly far and small; far ones first (hidden)
    for depth in depths:
        sid = int(rng.choice([PERSON, PERSON, RIDER, CAR, CAR, CAR, TRUCK, BUS]))
        iid = next_iid.get(sid, 0)
        next_iid[sid] = iid + 1
        y = horizon + int(depth * (H - horizon - 10)) + 10
        x = int(rng.integers(0, W))
        if sid in (PERSON, RIDER):
            paint_person(uids, sid, iid, y, x, height=int(15 + depth * 350))
        else:
            paint_vehicle(uids, sid, iid, y, x, width=int(20 + depth * (500 if sid == CAR else 700)))
    return render(uids, rng), uids


def render(uids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour a uid map like a photo: per-class colours, a light gradient, parts a little darker, film grain
    (so that the PNGs are about as large as Cityscapes' own, ~2 MB)."""
    sids = np.where(uids < 100, uids, np.where(uids < 100_000, uids // 1000, uids // 100_000))
    table = np.zeros((100, 3), np.float32)
    for sid, colour in COLOURS.items():
        table[sid] = colour
    image = table[sids] * np.linspace(0.8, 1.1, W, dtype=np.float32)[None, :, None]
    image -= np.where(uids >= 100_000, (uids % 100) * 6, 0)[..., None].astype(np.float32)
    grain = rng.normal(0.0, 8.0, (H // 2, W // 2, 3)).astype(np.float32).repeat(2, axis=0).repeat(2, axis=1)
    image += grain + rng.normal(0.0, 0.3, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_dataset(root: Path, files: int, seed: int) -> None:
    """``files`` synthetic images in the official layout under ``root`` (80 % train, 20 % val)."""
    rng = np.random.default_rng(seed)
    for i in range(files):
        split, city = ("train" if i < 0.8 * files else "val"), CITIES[i % len(CITIES)]
        name = f"{city}_{i:06d}_000019"
        image, uids = synthetic_scene(rng)
        image_path = root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png"
        label_path = root / "gtFinePanopticParts" / split / city / f"{name}_gtFinePanopticParts.tif"
        for path in (image_path, label_path):
            path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(image_path)
        Image.fromarray(uids).save(label_path, compression="tiff_lzw")


def folder_hash(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes (CSVs, dataset.yaml, images and masks)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=24, help="synthetic images to write")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time")
    parser.add_argument("--protocol", choices=PROTOCOLS, default=PROTOCOLS[0])
    parser.add_argument("--root", type=Path, help="folder for the synthetic files (kept; reused when present)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    set_quiet(True)
    work = Path(tempfile.mkdtemp(prefix="cityscapes-bench-"))
    src = args.root or work / "src"
    if not (src / "gtFinePanopticParts").is_dir():
        start = time.perf_counter()
        write_dataset(src, args.files, args.seed)
        print(f"wrote {args.files} synthetic files to {src} in {time.perf_counter() - start:.1f} s")
    files = len(list(src.glob("gtFinePanopticParts/*/*/*.tif")))
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    hashes = {}
    try:
        for workers in args.workers:
            out = work / f"out-{workers}"
            start = time.perf_counter()
            info = prepare_cityscapes(src, out, protocol=args.protocol, seed=args.seed, workers=workers)
            seconds = time.perf_counter() - start
            samples = sum(sum(c.values()) for c in info.counts.values())
            hashes[workers] = folder_hash(out)
            print(f"--workers {workers}: {files} files, {samples} samples in {seconds:.1f} s: "
                  f"{files / seconds:.2f} files/s, {samples / seconds:.1f} samples/s; "
                  f"{FULL_RELEASE} files would take {FULL_RELEASE / files * seconds / 60:.1f} min")
            shutil.rmtree(out)
    finally:
        shutil.rmtree(work)
    if len(set(hashes.values())) > 1:
        raise SystemExit(f"--protocol {args.protocol}: the outputs differ between worker counts: {hashes}")
    print(f"--protocol {args.protocol}: the outputs of every worker count are byte-identical")


if __name__ == "__main__":
    main()
