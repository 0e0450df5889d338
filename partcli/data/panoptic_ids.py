"""Decoding of the panoptic-parts label format (Cityscapes-Panoptic-Parts' per-pixel "uids").

A uid packs up to three ids (see panoptic-parts' label_format docs): ``sid`` (1–2 digits, semantic class
only), ``sid * 1000 + iid`` (4–5 digits, an instance), ``sid * 100_000 + iid * 100 + pid`` (6–7 digits,
an instance with a part class; ``pid`` 0 marks pixels whose part is void). We decode it ourselves because
the ``panoptic_parts`` package does not import on Python >= 3.10 and only accepts int32 arrays.
"""
from __future__ import annotations

import platform
from types import ModuleType
from unittest import mock

import numpy as np

NO_ID = -1  # panoptic_parts' value for an absent iid or pid


def decode_uids(uids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split uids into ``(sids, iids, pids)`` (int32, same shape), as ``panoptic_parts.decode_uids`` does.

    ``iids`` is -1 for semantic-only uids (< 100); ``pids`` is -1 for uids without a part level (< 100_000).
    Raise ValueError for values the format does not allow (negative, 3 digits, more than 7 digits).
    """
    uids = np.asarray(uids)
    if not np.issubdtype(uids.dtype, np.integer):
        raise ValueError(f"uids must be integers, got dtype {uids.dtype}")
    if uids.size and (uids.min() < 0 or uids.max() > 9_999_999 or np.any((uids >= 100) & (uids <= 999))):
        raise ValueError("uids outside the panoptic-parts format (negative, 3 digits or more than 7 digits)")
    u = uids.astype(np.int32, copy=False)
    semantic, with_part = u < 100, u >= 100_000
    # bring every uid to the 7-digit sid_iid_pid form (fake iid/pid 0), split it, then mark the fakes
    full = u * np.where(semantic, np.int32(100_000), np.where(with_part, np.int32(1), np.int32(100)))
    sids_iids, pids = np.divmod(full, np.int32(100))
    sids, iids = np.divmod(sids_iids, np.int32(1000))
    return sids, np.where(semantic, np.int32(NO_ID), iids), np.where(with_part, pids, np.int32(NO_ID))


def import_panoptic_parts() -> ModuleType:
    """Import the ``panoptic_parts`` package (tests use it as the reference for ``decode_uids``)."""
    # Its import-time check does float(platform.python_version()[:3]), which reads "3.11" as 3.1 and refuses.
    with mock.patch.object(platform, "python_version", return_value="3.9.0"):
        import panoptic_parts
    return panoptic_parts
