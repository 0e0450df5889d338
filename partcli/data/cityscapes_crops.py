"""Which Cityscapes-Panoptic-Parts objects become human/vehicle samples, and their crops: pure functions of a
uid map (``partcli prepare cityscapes`` does the file I/O).

Two protocols choose the objects and crop them:

``authors`` (the paper authors' data script, the default) pads the image and uid map with zeros by 10 % of the
longer side; every (sid, iid) of a human/vehicle sid except iid 0 (Cityscapes' first instance of a class in an
image) is an object, and so are the pixels of a sid with a semantic label only (a crowd, iid -1: one object per
sid); an object is occluded when, in its tight box less the last row and column, a single sid of the other
class covers more than half as many pixels as its own sid (all instances); the crop is a square of the box's
longer side plus ``int(pad * side)`` on each side, shifted up-left by a random fraction in [0, 2 * pad) of that
size, cut by the padded border; the mask holds the parts of every human and vehicle in the crop.

``text`` (the paper's App. A description) takes every instance (iid >= 0, no crowds); an object is occluded when
its crop holds more pixels of the other class than half its area; the crop is the box's square, centred, enlarged
by a random 0 to ``pad`` fraction; the mask holds only the instance's parts.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np

PROTOCOLS = ("authors", "text")
DEFAULT_PAD = {"authors": 0.2, "text": 0.1}
IMAGE_MARGIN = 0.1  # authors: zero padding of the image on every side, as a fraction of its longer side
CLASS_SIDS = {0: (24, 25), 1: (26, 27, 28)}  # human: person, rider | vehicle: car, truck, bus
CLASS_PARTS = {
    0: ["torso", "head", "arms", "legs"],  # Cityscapes-Panoptic-Parts pids 1..4
    1: ["windows", "wheels", "lights", "license plate", "chassis"],  # pids 1..5
}
FIRST_SID, LAST_SID = 24, 28  # the human and vehicle sids are consecutive
IIDS_PER_SID = 1001  # iid -1 (crowd) and 0..999
MAX_UID = 9_999_999  # 7 digits


def _class_of_sid() -> np.ndarray:
    """Class index of every sid 0..99 (-1: neither human nor vehicle)."""
    table = np.full(100, -1, dtype=np.int8)
    for label, sids in CLASS_SIDS.items():
        table[list(sids)] = label
    return table


def _part_of() -> np.ndarray:
    """Part id (1..9) of every (sid, pid), sid and pid 0..99; 0 for other sids, void (pid 0) and unknown pids."""
    table, offset = np.zeros((100, 100), dtype=np.uint8), 0
    for label, names in CLASS_PARTS.items():
        table[list(CLASS_SIDS[label]), 1 : len(names) + 1] = np.arange(offset + 1, offset + len(names) + 1)
        offset += len(names)
    return table


CLASS_OF_SID = _class_of_sid()
PART_OF = _part_of()


@dataclass(frozen=True)
class Candidate:
    """The pixels of one human/vehicle (sid, iid) in an image; iid -1: the sid's pixels without an instance."""

    sid: int
    iid: int
    area: int
    box: tuple[int, int, int, int]  # extreme rows and columns (y0, x0, y1, x1), inclusive

    @property
    def label(self) -> int:
        return int(CLASS_OF_SID[self.sid])

    @property
    def number(self) -> int:
        """The candidate's value in ``object_numbers``."""
        return 1 + (self.sid - FIRST_SID) * IIDS_PER_SID + self.iid + 1


@dataclass(frozen=True)
class Window:
    """A crop in image coordinates; it may leave the image, where it is zero."""

    top: int
    left: int
    height: int
    width: int


@dataclass(frozen=True)
class PlannedCrop:
    candidate: Candidate
    window: Window
    mask: np.ndarray  # part ids, the window's shape


@dataclass
class Plan:
    """The crops of one image and how many candidates each filter dropped."""

    crops: list[PlannedCrop] = field(default_factory=list)
    first_instance: int = 0  # iid 0, never a sample under "authors"
    small: int = 0
    occluded: int = 0


@cache
def _object_of_uid() -> np.ndarray:
    """Object number of every uid 0..MAX_UID: 1 + (sid - 24) * 1001 + (iid + 1) for human/vehicle sids, 0 for
    other uids, -1 for 3-digit uids (not in the format). A 20 MB table, built once per process."""
    table = np.zeros(MAX_UID + 1, dtype=np.int16)
    table[100:1000] = -1
    for k, sid in enumerate(range(FIRST_SID, LAST_SID + 1)):
        first = 1 + k * IIDS_PER_SID  # the crowd's number; iid i is first + 1 + i
        table[sid] = first
        table[sid * 1000 : sid * 1000 + 1000] = first + 1 + np.arange(1000)
        table[sid * 100_000 : (sid + 1) * 100_000] = first + 1 + np.arange(100_000) // 100
    return table


def find_candidates(uids: np.ndarray) -> list[Candidate]:
    """Every human/vehicle (sid, iid) of a uid map, iid -1 included, sorted by (sid, iid): one pass over the map
    and one sort of its human/vehicle pixels, not a mask of the whole map per object.

    Raise ValueError for values the panoptic-parts format does not allow (as ``decode_uids`` does).
    """
    if not np.issubdtype(uids.dtype, np.integer):
        raise ValueError(f"uids must be integers, got dtype {uids.dtype}")
    if uids.size and (int(uids.min()) < 0 or int(uids.max()) > MAX_UID):
        raise ValueError("uids outside the panoptic-parts format (negative or more than 7 digits)")
    flat = uids.ravel()
    # the uids from 24 (person) to 2_899_999 (bus_999_99) hold every human/vehicle uid and every 3-digit one
    pixels = np.flatnonzero((flat >= FIRST_SID) & (flat < (LAST_SID + 1) * 100_000))
    numbers = object_numbers(flat[pixels])
    if numbers.size and numbers.min() < 0:
        raise ValueError("uids outside the panoptic-parts format (3 digits)")
    pixels, numbers = pixels[numbers > 0], numbers[numbers > 0]
    if not pixels.size:
        return []
    order = np.argsort(numbers, kind="stable")  # pixels stay in row-major order within an object
    numbers, pixels = numbers[order], pixels[order]
    starts = np.flatnonzero(np.r_[True, numbers[1:] != numbers[:-1]])
    ends = np.r_[starts[1:], numbers.size]
    ys, xs = np.divmod(pixels, uids.shape[1])
    found = []
    for n, start, end, x0, x1 in zip(numbers[starts].tolist(), starts.tolist(), ends.tolist(),
                                     np.minimum.reduceat(xs, starts).tolist(),
                                     np.maximum.reduceat(xs, starts).tolist(), strict=True):
        sid, iid = FIRST_SID + (n - 1) // IIDS_PER_SID, (n - 1) % IIDS_PER_SID - 1
        found.append(Candidate(sid, iid, end - start, (int(ys[start]), x0, int(ys[end - 1]), x1)))
    return found


def crop_padded(array: np.ndarray, window: Window) -> np.ndarray:
    """``array`` cut to ``window``, zero where the window leaves it."""
    out = np.zeros((window.height, window.width) + array.shape[2:], dtype=array.dtype)
    height, width = array.shape[:2]
    y0, x0 = max(window.top, 0), max(window.left, 0)
    y1, x1 = min(window.top + window.height, height), min(window.left + window.width, width)
    if y0 < y1 and x0 < x1:
        out[y0 - window.top : y1 - window.top, x0 - window.left : x1 - window.left] = array[y0:y1, x0:x1]
    return out


@cache
def _part_of_uid() -> np.ndarray:
    """Part id of every uid 0..MAX_UID (``PART_OF`` of its sid and pid; 0 without a part level). 10 MB, built
    once per process: one look-up per crop pixel instead of two divisions and a 2-D look-up."""
    table = np.zeros(MAX_UID + 1, dtype=np.uint8)
    for sid in range(FIRST_SID, LAST_SID + 1):  # sid_iid_pid: 100 pids per iid, 1000 iids
        table[sid * 100_000 : (sid + 1) * 100_000] = np.tile(PART_OF[sid], 1000)
    return table


def part_mask(uids: np.ndarray) -> np.ndarray:
    """Part ids (uint8, 0 = background) of valid uids: every human's and vehicle's parts."""
    return _part_of_uid()[uids]


def object_numbers(uids: np.ndarray) -> np.ndarray:
    """The ``Candidate.number`` of every pixel of valid ``uids``; 0 where neither human nor vehicle."""
    return _object_of_uid()[uids]


def sid_counts(numbers: np.ndarray) -> np.ndarray:
    """How many of the pixels with these object numbers belong to each sid 24..28, crowds included."""
    sids = LAST_SID - FIRST_SID + 1
    return np.bincount(numbers.ravel(), minlength=1 + sids * IIDS_PER_SID)[1:].reshape(sids, -1).sum(axis=1)


# --- authors ----------------------------------------------------------------------------------------------


def authors_occluded(uids: np.ndarray, candidate: Candidate) -> bool:
    """Whether one sid of the other class covers more than half as many pixels as the candidate's sid (all its
    instances and crowds) in the candidate's box less its last row and column."""
    y0, x0, y1, x1 = candidate.box
    counts = sid_counts(object_numbers(uids[y0:y1, x0:x1]))
    own = int(counts[candidate.sid - FIRST_SID])
    return any(2 * int(counts[s - FIRST_SID]) > own for s in CLASS_SIDS[1 - candidate.label])


def authors_window(box: tuple[int, int, int, int], shape: tuple[int, int], pad: float,
                   offsets: tuple[float, float]) -> Window:
    """The authors' crop of ``box`` in an image of ``shape`` (H, W), ``offsets`` the two random fractions in
    [0, 2 * pad) that shift it left and up; in the zero-padded image it starts at >= 0 and is cut by its border."""
    y0, x0, y1, x1 = box
    margin = int(max(shape) * IMAGE_MARGIN)
    height, width = y1 - y0, x1 - x0  # their extent: one less than the box's pixel count
    side = max(height, width)
    size = max(side + 2 * int(pad * side), 1)  # 1: a single-pixel object still gets a pixel
    left = max(0, x0 + margin - (side - width) // 2 - int(offsets[0] * size))  # in the padded image
    top = max(0, y0 + margin - (side - height) // 2 - int(offsets[1] * size))
    return Window(top - margin, left - margin, min(size, shape[0] + 2 * margin - top),
                  min(size, shape[1] + 2 * margin - left))


def plan_authors(uids: np.ndarray, candidates: list[Candidate], min_area: int, pad: float,
                 rng_for: Callable[[Candidate], np.random.Generator]) -> Plan:
    """The authors' samples: no iid 0, then the area, occlusion, crop and mask rules of the module docstring."""
    plan = Plan()
    for c in candidates:
        if c.iid == 0:
            plan.first_instance += 1
        elif c.area < min_area:
            plan.small += 1
        elif authors_occluded(uids, c):
            plan.occluded += 1
        else:
            r1, r2 = rng_for(c).uniform(0.0, 2 * pad, size=2)
            window = authors_window(c.box, uids.shape, pad, (float(r1), float(r2)))
            plan.crops.append(PlannedCrop(c, window, part_mask(crop_padded(uids, window))))
    return plan


# --- text -------------------------------------------------------------------------------------------------


def square_box(box: tuple[int, int, int, int], extra: float) -> tuple[int, int, int]:
    """``(top, left, side)`` of the square centred on ``box`` (inclusive y0, x0, y1, x1).

    Its side is the box's longer side enlarged by the fraction ``extra``; it always contains the box.
    """
    y0, x0, y1, x1 = box
    height, width = y1 - y0 + 1, x1 - x0 + 1
    side = max(height, width)
    size = max(side, int(round(side * (1.0 + extra))))
    return y0 + (height - size) // 2, x0 + (width - size) // 2, size


def plan_text(uids: np.ndarray, candidates: list[Candidate], min_area: int, pad: float,
              rng_for: Callable[[Candidate], np.random.Generator]) -> Plan:
    """The paper text's samples: instances only, then the area, occlusion, crop and mask rules of the docstring."""
    plan = Plan()
    for c in candidates:
        if c.iid < 0:
            continue  # a crowd is no instance
        if c.area < min_area:
            plan.small += 1
            continue
        top, left, size = square_box(c.box, float(rng_for(c).uniform(0.0, pad)))
        window = Window(top, left, size, size)
        crop = crop_padded(uids, window)
        numbers = object_numbers(crop)
        counts = sid_counts(numbers)
        if sum(int(counts[s - FIRST_SID]) for s in CLASS_SIDS[1 - c.label]) > c.area / 2:
            plan.occluded += 1
            continue
        plan.crops.append(PlannedCrop(c, window, np.where(numbers == c.number, part_mask(crop), 0).astype(np.uint8)))
    return plan


PLANNERS = {"authors": plan_authors, "text": plan_text}


def plan_crops(uids: np.ndarray, *, protocol: str, min_area: int, pad: float,
               rng_for: Callable[[Candidate], np.random.Generator]) -> Plan:
    """The samples of one uid map under ``protocol``; ``rng_for`` gives each candidate its own random draws.

    Raise ValueError for a uid map outside the panoptic-parts format.
    """
    return PLANNERS[protocol](uids, find_candidates(uids), min_area, pad, rng_for)
