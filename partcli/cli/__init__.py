"""The ``partcli`` command line: parses options and calls the Python API; nothing else lives here.

``app`` and the entry point ``main`` are in ``partcli.cli.app``; each command group registers its commands on ``app``
when imported below. Option declarations are the configuration dataclasses' fields (``partcli.options``), turned
into Typer parameters by ``partcli.cli.typer_options``, the only module that knows Typer's option API.
"""
# in the order --help lists the commands; prepare and import are groups of their own
from partcli.cli import prepare, training, measure, summaries  # noqa: F401, I001 (they register their commands)
from partcli.cli.app import app, main

__all__ = ["app", "main"]
