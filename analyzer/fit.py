"""Tables that fit a terminal: the ``read`` table and the live view lay out their
columns here, for any width, 80 columns first.

Each table lists its columns with everything they could show, and an ordered list of
steps to take while the table is too wide: drop a column, switch a column to its
short form (``ES/TW`` for two state names), or elide the endpoints (``[2001:db8…
7:1]:443``: the port and both ends of the address stay). Steps run in order until
the table fits, so the order *is* the priority, written down once per table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

ELLIPSIS = "…"


def elide(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, the middle replaced by an ellipsis."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    head = (width - 1) // 2
    return text[:head] + ELLIPSIS + text[len(text) - (width - 1 - head):]


def elide_endpoint(text: str, width: int) -> str:
    """``addr:port`` or ``[v6]:port`` in ``width`` characters: the port is always whole,
    the address loses its start (the network, often the same for every host) and keeps
    its end, which tells hosts apart: ``[…c999:d94:aa7c:2e3e]:49185``."""
    if len(text) <= width:
        return text
    host, _, port = text.rpartition(":")
    v6 = host.startswith("[")
    inner = host[1:-1] if v6 else host
    room = width - len(port) - 1 - (3 if v6 else 1)  # brackets and the ellipsis
    if room < 2:
        return elide(text, width)
    short = ELLIPSIS + inner[len(inner) - room:]
    return (f"[{short}]" if v6 else short) + ":" + port


@dataclass
class Column:
    """One column: a header and a text per row, plus what it can give up."""

    name: str
    header: str
    cells: list[str]
    right: bool = False  # numbers are right-aligned
    short_header: str | None = None
    short_cells: list[str] | None = None
    endpoint: bool = False  # elided with elide_endpoint
    min_width: int = 0  # unless elided (so a table keeps its shape from file to file)
    shown: bool = True
    short: bool = False
    limit: int | None = None  # cells elided to this width
    style: list[str] = field(default_factory=list)
    longest: int = 0  # the longest cell of rows not in ``cells`` (a table laid out in parts)

    def texts(self) -> tuple[str, list[str]]:
        if self.short and self.short_cells is not None:
            header, cells = self.short_header or self.header, self.short_cells
        else:
            header, cells = self.header, self.cells
        if self.limit is not None:
            cut = elide_endpoint if self.endpoint else elide
            cells = [cut(c, self.limit) for c in cells]
        return header, cells

    def width(self) -> int:
        header, cells = self.texts()
        longest = self.longest if self.limit is None else min(self.longest, self.limit)
        natural = max([len(header), longest, *map(len, cells)])
        return natural if self.limit is not None else max(natural, self.min_width)


# Steps: ("drop", column), ("short", column), ("elide", column, width), ("swap", columns,
# compact column: shown instead of them); a column may be several joined by "+", changed
# together.
Step = tuple[str, str] | tuple[str, str, int] | tuple[str, str, str]


def table_width(columns: Sequence[Column], sep: int = 1) -> int:
    shown = [c for c in columns if c.shown]
    return sum(c.width() for c in shown) + sep * max(0, len(shown) - 1)


def fit(columns: list[Column], steps: Sequence[Step], width: int, sep: int = 1
        ) -> list[Column]:
    """The columns shown at ``width``: steps are applied in order until the table fits
    (or none is left: the narrowest layout then)."""
    by_name = {c.name: c for c in columns}
    for step in steps:
        if table_width(columns, sep) <= width:
            break
        kind, names, *rest = step
        for name in names.split("+"):  # "client+server": both at once
            column = by_name[name]
            if kind == "drop":
                column.shown = False
            elif kind == "short":
                column.short = True
            elif kind == "elide" and rest and isinstance(rest[0], int):
                column.limit = rest[0]
            elif kind == "swap" and rest:  # these columns give way to a compact one
                column.shown = False
                by_name[str(rest[0])].shown = True
            else:
                raise ValueError(f"unknown step {step!r}")
    return [c for c in columns if c.shown]


def render_lines(columns: Sequence[Column], sep: int = 1) -> list[str]:
    """The header and the rows as plain text lines (trailing blanks removed)."""
    parts = []
    for column in columns:
        header, cells = column.texts()
        w = column.width()
        parts.append([(f"{t:>{w}}" if column.right else f"{t:<{w}}") for t in [header, *cells]])
    gap = " " * sep
    return [gap.join(row).rstrip() for row in zip(*parts)] if parts else []
