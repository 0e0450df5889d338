"""``partcli sweep``: the paper's hyper-parameter search (§3.5.3, Tables 7–9) as staged grids of training runs.

``build_definition`` checks the options and values (``config``), ``plan_points`` numbers the points and names
their run folders (``plan``), ``run_sweep`` trains them and ``list_sweep`` reports their status (``run``),
``pick_point`` holds the pick rules (``pick``) and ``sweep.csv`` is written and read by ``summary``.

The exports are lazy, so that importing the command's option declarations (``options``) imports no torch.
"""
from __future__ import annotations

from typing import Any

__all__ = ["SweepDefinition", "SweepState", "build_definition", "list_sweep", "run_sweep"]
_HOMES = {"SweepDefinition": "config", "build_definition": "config", "SweepState": "run", "list_sweep": "run",
          "run_sweep": "run"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(f"partcli.sweep.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'partcli.sweep' has no attribute {name!r}")
