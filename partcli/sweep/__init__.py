"""``partcli sweep``: the paper's hyper-parameter search (§3.5.3, Tables 7–9) as staged grids of training runs.

``build_definition`` checks the options and values (``config``), ``plan_points`` numbers the points and names
their run folders (``plan``), ``run_sweep`` trains them and ``list_sweep`` reports their status (``run``),
``pick_point`` holds the pick rules (``pick``) and ``sweep.csv`` is written and read by ``summary``.
"""
from partcli.sweep.config import SweepDefinition, build_definition
from partcli.sweep.run import SweepState, list_sweep, run_sweep

__all__ = ["SweepDefinition", "SweepState", "build_definition", "list_sweep", "run_sweep"]
