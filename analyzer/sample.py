"""The sample capture that ships with the package (one name, used by ``demo --replay``
and by the examples in ``--help``). Standard library only: ``--help`` reads it."""

from __future__ import annotations

from pathlib import Path

NAME = "echo-lo.pcap"
# Where the source tree has it (a link to the package data), as the README names it.
IN_TREE = f"captures/{NAME}"


def installed() -> Path:
    """The package data file, there after any ``pip install`` (editable or not)."""
    return Path(__file__).resolve().parent / "data" / NAME
