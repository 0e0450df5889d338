"""``partcli visualize``: what a part model sees, on clean and attacked images (paper Fig. 5, App. D.12).

The exports are lazy, so that importing this package's option declarations at the CLI's start-up imports no torch.
"""
from __future__ import annotations

from typing import Any

__all__ = ["ATTACKS", "VisualizeResult", "visualize"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from partcli.mask_views import draw

        return getattr(draw, name)
    raise AttributeError(f"module 'partcli.mask_views' has no attribute {name!r}")
