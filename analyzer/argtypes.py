"""Argument types shared by the ``handshake`` subcommands (standard library only, so
``handshake --help`` stays instant). Each raises ``argparse.ArgumentTypeError`` with a
message that names what was expected: argparse prints it as
``handshake read: error: argument --port: 'abc' is not a port number (0-65535)``."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["count", "integer", "non_negative", "non_negative_seconds", "port", "ports", "seconds"]


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def integer(text: str) -> int:
    return _int(text, "a whole number")


def port(text: str) -> int:
    what = "a port number (0-65535)"
    value = _int(text, what)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def ports(text: str) -> tuple[int, ...]:
    """A comma-separated list of ports, possibly empty."""
    return tuple(port(p) for p in text.replace(" ", "").split(",") if p)


def _at_least(low: int, what: str) -> Callable[[str], int]:
    def check(text: str) -> int:
        value = _int(text, what)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    return check


count = _at_least(1, "a positive whole number")
non_negative = _at_least(0, "a whole number >= 0")


def seconds(text: str) -> float:
    """A duration > 0 in seconds."""
    value = _float(text, "a positive number of seconds")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def non_negative_seconds(text: str) -> float:
    value = _float(text, "a number of seconds >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value
