"""Counts in words, one way for every output: ``1 segment``, ``2 segments``."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None, *, grouped: bool = True) -> str:
    """``n`` and the noun it counts, singular for exactly one; thousands separated unless
    ``grouped`` is false (lines other programs parse keep their plain numbers)."""
    return (f"{n:,}" if grouped else f"{n}") + f" {word if n == 1 else (many or word + 's')}"
