"""``partcli prepare synthetic``: a procedural part-segmentation dataset that needs no download.

Every image shows one object of one of five classes, built from class-specific parts (K = 19 in all):

- ``quadruped``: tail, legs, body, head (horizontal body on four legs)
- ``biped``: legs, torso, arms, head (upright)
- ``fish``: tail, fin, body, head (elongated body, triangular tail)
- ``car``: body, windows, wheels (box with a cabin on two wheels)
- ``bird``: body, head, beak, wings (round body, raised wing)

Parts are polygons (ellipses, rectangles, limbs, triangles) drawn with PIL in a fixed back-to-front order
per class; the mask is drawn with the same polygons in the same order, so a mask pixel holds a part id
exactly where that part's colour shows in the image. Part ids follow ``parts()`` (which lists each class's
parts in drawing order); 0 is background. Each sample jitters the part sizes and layout, then places the
object at a random position with its larger side ``OBJECT_SIZE`` of the image, flipped horizontally half the
time and rotated by up to 15 degrees; pixel noise (``PIXEL_NOISE_STD``) covers the whole image.

Appearance (generator version 2, ``GENERATOR_VERSION``): every class has parts of three roles (``PART_ROLES``:
core, head, limb), and a part's colour is drawn from its role's hue band (``ROLE_HUES`` ± ``HUE_JITTER``):
parts of one role look alike in every class, which a from-scratch segmenter learns within a few hundred steps.
Part colours are moderately saturated, backgrounds less so. Version 1 drew every part's colour uniformly at
random and drew smaller objects: its segmenters stayed at all-background for many epochs. (Drawing the roles'
hue bands in a random order per image instead slowed the segmenter about fivefold: measured, not kept.)

What a classifier can learn from, by design (the question the paper asks):

- **Shape** (the intended cue): the class is fully determined by the parts' shapes and layout. Every hue band
  occurs in every class; only the share of the object each role covers differs, so the object's mean colour is
  a weak cue (a nearest-centroid classifier on it gets about 50 %, chance 20 %).
- **Background texture** (a weaker shortcut): backgrounds come from five families (noise, stripes,
  gradient, checkerboard, rings) in random colours. Each class has a preferred family, used with
  probability ``PREFERRED_BACKGROUND_PROB`` = 0.5; otherwise the family is drawn uniformly from all five.
  So a class shows its family in 60% of its images and each other family in 10%, and the background alone
  predicts the class at most 60% of the time (chance is 20%).

Generation is deterministic: sample ``i`` is rendered from a generator seeded with ``(seed, i)``, so the
output does not depend on the order or process that renders it, and the same seed gives identical files.
"""
from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from partcli.data.contract import DatasetInfo, Part
from partcli.data.splits import stratified_split, stratified_split_counts
from partcli.data.writer import DatasetWriter
from partcli.errors import PartcliError
from partcli.options import MAX_SEED
from partcli.progress import track

CLASS_PARTS: dict[str, tuple[str, ...]] = {
    "quadruped": ("tail", "legs", "body", "head"),
    "biped": ("legs", "torso", "arms", "head"),
    "fish": ("tail", "fin", "body", "head"),
    "car": ("body", "windows", "wheels"),
    "bird": ("body", "head", "beak", "wings"),
}
CLASSES: tuple[str, ...] = tuple(CLASS_PARTS)
# Every class has parts of each of three roles, and a part's colour comes from its role's hue band: "a head looks
# like a head" across classes, so a segmenter learns parts quickly, while no colour belongs to one class.
PART_ROLES: dict[str, tuple[str, ...]] = {
    "quadruped": ("limb", "limb", "core", "head"),
    "biped": ("limb", "core", "limb", "head"),
    "fish": ("limb", "limb", "core", "head"),
    "car": ("core", "head", "limb"),
    "bird": ("core", "head", "limb", "limb"),
}
ROLE_HUES: dict[str, float] = {"core": 0.0, "head": 1 / 3, "limb": 2 / 3}  # hue band centres: red, green, blue
HUE_JITTER = 0.07
PART_SATURATION, PART_VALUE = (0.3, 0.7), (0.35, 0.85)  # HSV ranges of part colours
BACKGROUND_SATURATION, BACKGROUND_VALUE = (0.0, 0.4), (0.2, 0.8)  # of the two colours of a background texture
GENERATOR_VERSION = 2  # recorded in dataset.yaml; version 1 drew every part's colour at random
BACKGROUNDS: tuple[str, ...] = ("noise", "stripes", "gradient", "checkerboard", "rings")
PREFERRED_BACKGROUND: dict[str, str] = dict(zip(CLASSES, BACKGROUNDS))
PREFERRED_BACKGROUND_PROB = 0.5
OBJECT_SIZE = (0.4, 0.8)  # larger side of the object's bounding box, as a fraction of the image side
MAX_ROTATION_DEG = 15.0
PIXEL_NOISE_STD = 10.0
MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 2048
MAX_N = 1_000_000
# stratified_split's rounding leaves a split without a class when a class has fewer than 8 samples
MIN_PER_CLASS = 8

Polygon = np.ndarray  # (N, 2) float x, y


def parts() -> list[Part]:
    """All parts in id order (id = position + 1): each class's parts, back to front."""
    return [Part(f"{cls}/{name}", cls) for cls, names in CLASS_PARTS.items() for name in names]


def first_part_id(cls: int) -> int:
    """Part id of class ``cls``'s first (rearmost) part."""
    return 1 + sum(len(CLASS_PARTS[c]) for c in CLASSES[:cls])


# --- primitive shapes, in the object's own coordinates (x right, y down, about -1..1) ---

def ellipse(cx: float, cy: float, rx: float, ry: float, points: int = 32) -> Polygon:
    t = np.linspace(0.0, 2 * np.pi, points, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def rect(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def limb(a: tuple[float, float], b: tuple[float, float], width: float) -> Polygon:
    """A quadrilateral of the given width from point a to point b (a leg, an arm, a tail)."""
    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    d = b_ - a_
    normal = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-12) * width / 2
    return np.stack([a_ + normal, b_ + normal, b_ - normal, a_ - normal])


def poly(*xy: tuple[float, float]) -> Polygon:
    return np.array(xy, dtype=float)


# --- class layouts: each returns, per part in drawing order, the polygons that make it up ---

def quadruped(rng: np.random.Generator) -> list[list[Polygon]]:
    rx, ry = rng.uniform(0.55, 0.7), rng.uniform(0.2, 0.28)
    leg, lw = rng.uniform(0.35, 0.5), rng.uniform(0.09, 0.13)
    hr = rng.uniform(0.15, 0.21)
    tail_end = (-rx - rng.uniform(0.2, 0.35), -ry - rng.uniform(0.0, 0.3))
    legs = [limb((x * rx, 0.0), (x * rx + rng.uniform(-0.06, 0.06), ry + leg), lw) for x in (-0.75, -0.45, 0.45, 0.75)]
    return [
        [limb((-0.85 * rx, -0.3 * ry), tail_end, rng.uniform(0.05, 0.08))],
        legs,
        [ellipse(0.0, 0.0, rx, ry)],
        [ellipse(rx * 0.95, -ry - hr * 0.4, hr * rng.uniform(1.0, 1.3), hr)],
    ]


def biped(rng: np.random.Generator) -> list[list[Polygon]]:
    tw, top, bottom = rng.uniform(0.17, 0.24), -rng.uniform(0.3, 0.4), rng.uniform(0.2, 0.3)
    hr, lw, aw = rng.uniform(0.14, 0.19), rng.uniform(0.09, 0.12), rng.uniform(0.07, 0.1)
    foot = bottom + rng.uniform(0.5, 0.65)
    legs = [limb((s * 0.55 * tw, bottom - 0.05), (s * (0.55 * tw + rng.uniform(0.0, 0.15)), foot), lw) for s in (-1, 1)]
    arms = [limb((s * (tw + aw / 2), top + 0.05), (s * (tw + rng.uniform(0.1, 0.35)), bottom + rng.uniform(-0.15, 0.1)), aw)
            for s in (-1, 1)]
    return [legs, [rect(-tw, top, tw, bottom)], arms, [ellipse(0.0, top - hr * 0.95, hr, hr * rng.uniform(1.0, 1.2))]]


def fish(rng: np.random.Generator) -> list[list[Polygon]]:
    rx, ry = rng.uniform(0.55, 0.7), rng.uniform(0.2, 0.3)
    tail_len, tail_h = rng.uniform(0.25, 0.4), rng.uniform(0.2, 0.35)
    fin_x = rng.uniform(-0.2, 0.1)
    head = ellipse(0.0, 0.0, rx, ry)
    head = head[head[:, 0] >= rx * rng.uniform(0.35, 0.5)]  # the front cap of the body's outline
    return [
        [poly((-rx * 0.85, 0.0), (-rx - tail_len, -tail_h), (-rx - tail_len * 0.8, 0.0), (-rx - tail_len, tail_h))],
        [poly((fin_x - 0.2, -ry * 0.6), (fin_x + 0.2, -ry * 0.6), (fin_x - 0.15, -ry - rng.uniform(0.15, 0.3)))],
        [ellipse(0.0, 0.0, rx, ry)],
        [head],
    ]


def car(rng: np.random.Generator) -> list[list[Polygon]]:
    half, low, high = rng.uniform(0.7, 0.85), rng.uniform(-0.05, 0.05), rng.uniform(0.18, 0.26)
    roof, cab_back, cab_front = low - rng.uniform(0.28, 0.38), -rng.uniform(0.3, 0.5), rng.uniform(0.25, 0.45)
    wr = rng.uniform(0.13, 0.18)
    cabin = poly((cab_back - 0.1, low), (cab_back, roof), (cab_front - 0.05, roof), (cab_front + 0.1, low))
    inset, mid = 0.06, (cab_back + cab_front) / 2
    windows = [
        poly((cab_back - 0.05 + inset, low - inset / 2), (cab_back + inset, roof + inset), (mid - inset / 2, roof + inset),
             (mid - inset / 2, low - inset / 2)),
        poly((mid + inset / 2, low - inset / 2), (mid + inset / 2, roof + inset), (cab_front - 0.05 - inset / 2, roof + inset),
             (cab_front + 0.1 - inset * 1.5, low - inset / 2)),
    ]
    wheels = [ellipse(s * half * 0.62, high, wr, wr) for s in (-1, 1)]
    return [[rect(-half, low, half, high), cabin], windows, wheels]


def bird(rng: np.random.Generator) -> list[list[Polygon]]:
    rx, ry = rng.uniform(0.38, 0.48), rng.uniform(0.24, 0.3)
    hr = rng.uniform(0.14, 0.19)
    hx, hy = rx * 0.85, -ry * 0.9
    beak = rng.uniform(0.15, 0.25)
    tail = poly((-rx * 0.8, -0.05), (-rx - rng.uniform(0.2, 0.35), -rng.uniform(0.05, 0.2)), (-rx - 0.2, 0.15), (-rx * 0.8, 0.1))
    wing_tip = (rng.uniform(-0.45, -0.15), -ry - rng.uniform(0.35, 0.55))
    return [
        [ellipse(0.0, 0.0, rx, ry), tail],
        [ellipse(hx, hy, hr, hr)],
        [poly((hx + hr * 0.7, hy - hr * 0.35), (hx + hr + beak, hy + rng.uniform(-0.03, 0.08)), (hx + hr * 0.7, hy + hr * 0.35))],
        [poly((-rx * 0.4, -ry * 0.2), (rx * 0.35, -ry * 0.2), wing_tip)],
    ]


LAYOUTS = {"quadruped": quadruped, "biped": biped, "fish": fish, "car": car, "bird": bird}


# --- backgrounds ---

def pick_background(rng: np.random.Generator, cls: int) -> str:
    """The class's preferred family with probability PREFERRED_BACKGROUND_PROB, else any family uniformly."""
    if rng.random() < PREFERRED_BACKGROUND_PROB:
        return PREFERRED_BACKGROUND[CLASSES[cls]]
    return BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]


def background(rng: np.random.Generator, family: str, size: int) -> np.ndarray:
    """A size×size×3 uint8 texture of ``family`` mixing two random colours; periods scale with ``size``."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    proj = x * np.cos(angle) + y * np.sin(angle)
    period = rng.uniform(0.06, 0.25) * size
    if family == "noise":
        cells = int(rng.integers(3, 9))
        grid = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
        t = np.asarray(grid.resize((size, size), Image.BILINEAR), dtype=np.float32) / 255
    elif family == "stripes":
        t = ((proj / period) % 1.0 < rng.uniform(0.3, 0.7)).astype(np.float32)
    elif family == "gradient":
        t = (proj - proj.min()) / (proj.max() - proj.min())
    elif family == "checkerboard":
        off = rng.uniform(0, period, 2)
        t = ((np.floor((x + off[0]) / period) + np.floor((y + off[1]) / period)) % 2).astype(np.float32)
    elif family == "rings":
        cx, cy = rng.uniform(0, size, 2)
        t = ((np.hypot(x - cx, y - cy) / period) % 1.0 < 0.5).astype(np.float32)
    else:
        raise ValueError(f"unknown background family {family!r}")
    c1, c2 = (_hsv(rng.random(), rng.uniform(*BACKGROUND_SATURATION), rng.uniform(*BACKGROUND_VALUE)) for _ in range(2))
    return (c1 + t[..., None] * (c2 - c1)).round().astype(np.uint8)


def _hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=np.float32) * 255


def part_colour(rng: np.random.Generator, hue: float) -> tuple[int, int, int]:
    """A colour in the hue band around ``hue``, more saturated than backgrounds (``PART_SATURATION``)."""
    hue = hue + rng.uniform(-HUE_JITTER, HUE_JITTER)
    return tuple(int(c) for c in _hsv(hue, rng.uniform(*PART_SATURATION), rng.uniform(*PART_VALUE)).round())


# --- one sample ---

def place(polys: list[list[Polygon]], rng: np.random.Generator, size: int) -> list[list[Polygon]]:
    """Flip, rotate, scale and move the object into the image: larger side OBJECT_SIZE of it, fully inside."""
    flip = -1.0 if rng.random() < 0.5 else 1.0
    theta = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    moved = [[(p * [flip, 1.0]) @ rot.T for p in part] for part in polys]
    pts = np.concatenate([p for part in moved for p in part])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    scale = rng.uniform(*OBJECT_SIZE) * size / (hi - lo).max()
    extent = (hi - lo) * scale
    offset = rng.uniform(0, size - extent) - lo * scale
    return [[p * scale + offset for p in part] for part in moved]


def render_sample(rng: np.random.Generator, cls: int, image_size: int) -> tuple[Image.Image, np.ndarray]:
    """Render one object of class index ``cls``: an RGB image and its uint8 part-id mask (0 = background)."""
    family = pick_background(rng, cls)
    image = Image.fromarray(background(rng, family, image_size))
    mask = Image.new("L", (image_size, image_size), 0)
    draw_image, draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    polys = place(LAYOUTS[CLASSES[cls]](rng), rng, image_size)
    for part_id, (part, role) in enumerate(zip(polys, PART_ROLES[CLASSES[cls]]), start=first_part_id(cls)):
        colour = part_colour(rng, ROLE_HUES[role])
        for p in part:
            xy = [tuple(v) for v in p.tolist()]
            draw_image.polygon(xy, fill=colour)
            draw_mask.polygon(xy, fill=part_id)
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0.0, PIXEL_NOISE_STD, (image_size, image_size, 3))
    return Image.fromarray(noisy.clip(0, 255).round().astype(np.uint8)), np.asarray(mask, dtype=np.uint8)


def held_out_per_class(n: int, n_val: int | None, n_test: int | None) -> dict[str, int] | None:
    """Per-class val/test sizes when either is fixed (the other keeps 10 % of ``n``); None for the 80/10/10 split."""
    if n_val is None and n_test is None:
        return None
    return {name: count // len(CLASSES) if count is not None else round(0.1 * n / len(CLASSES))
            for name, count in (("val", n_val), ("test", n_test))}


def check_options(n: int, image_size: int, seed: int, n_val: int | None = None, n_test: int | None = None) -> None:
    """Refuse options that cannot give a valid dataset, naming the CLI option."""
    min_n = MIN_PER_CLASS * len(CLASSES)
    for flag, count in (("--n-val", n_val), ("--n-test", n_test)):
        if count is not None and (count <= 0 or count % len(CLASSES)):
            raise PartcliError(f"{flag} {count}: give a positive multiple of {len(CLASSES)} (the number of classes), "
                               "so every class has the same count")
    held_per_class = sum((held_out_per_class(n, n_val, n_test) or {}).values())
    if held_per_class and n // len(CLASSES) - held_per_class < MIN_PER_CLASS:
        held = held_per_class * len(CLASSES)
        raise PartcliError(f"--n {n}: too few samples for --n-val/--n-test ({held} held out); give at least "
                           f"{held + min_n} so training keeps {MIN_PER_CLASS} per class")
    if n < min_n:
        raise PartcliError(
            f"--n {n}: too few samples; give at least {min_n} ({MIN_PER_CLASS} per class) so every split holds every class"
        )
    if n > MAX_N:
        raise PartcliError(f"--n {n}: more than {MAX_N:,} samples; generate datasets of at most that size")
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise PartcliError(f"--image-size {image_size}: give {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels")
    if not 0 <= seed <= MAX_SEED:
        raise PartcliError(f"--seed {seed}: must be an integer in [0, {MAX_SEED}]")


def prepare_synthetic(
    out: Path, *, n: int = 3000, image_size: int = 64, seed: int = 0, overwrite: bool = False,
    n_val: int | None = None, n_test: int | None = None,
) -> DatasetInfo:
    """Generate ``n`` class-balanced samples (labels cycle through the classes) into a prepared dataset at ``out``.

    Splits are 80/10/10 per class; ``n_val``/``n_test`` instead fix those splits' sizes (the same count of every
    class, the rest is train), e.g. a 500-image test split whose accuracies have a binomial s.e. ≤ 2.3 points.
    """
    check_options(n, image_size, seed, n_val, n_test)
    labels = [i % len(CLASSES) for i in range(n)]
    sizes = held_out_per_class(n, n_val, n_test)
    splits = stratified_split(labels, seed) if sizes is None else stratified_split_counts(labels, seed, sizes)
    width = len(str(n - 1))
    with DatasetWriter(out, list(CLASSES), parts(), name="synthetic", overwrite=overwrite) as writer:
        for i in track(range(n), "rendering synthetic images"):
            image, mask = render_sample(np.random.default_rng([seed, i]), labels[i], image_size)
            writer.add(splits[i], f"{i:0{width}d}", labels[i], image=image, mask=mask)
        source = {"command": "prepare synthetic", "generator_version": GENERATOR_VERSION, "n": n,
                  "image_size": image_size, "seed": seed, "n_val": n_val, "n_test": n_test}
        extra = {
            "part_roles": {cls: list(roles) for cls, roles in PART_ROLES.items()},
            "background": {
                "families": list(BACKGROUNDS),
                "preferred": dict(PREFERRED_BACKGROUND),
                "preferred_prob": PREFERRED_BACKGROUND_PROB,
            }
        }
        return writer.finish(source=source, extra=extra)
