"""Which rules a preparer follows where part annotations overlap (``--protocol``).

``authors`` (the default) reproduces the data scripts behind the paper's published numbers; ``largest-first`` is
the rule partcli used before. dataset.yaml records the choice as ``source.protocol``; a prepared folder without
that key was made with ``largest-first``.
"""
from __future__ import annotations

from partcli.errors import PartcliError

AUTHORS, LARGEST_FIRST = "authors", "largest-first"
PROTOCOLS = (AUTHORS, LARGEST_FIRST)


def check_protocol(protocol: str) -> str:
    """``protocol`` if it is one of PROTOCOLS, else a PartcliError naming the option."""
    if protocol not in PROTOCOLS:
        raise PartcliError(f"--protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    return protocol
