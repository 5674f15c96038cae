"""Connection filters on the results of ``handshake read`` / ``analyzer.read``:
``--state REJ,S0`` (Zeek's conn_state), ``--close reset`` (the close kind) and
``--where CONDITION``.

A condition is a small expression language over a connection's fields: the
``--format csv`` column names (``irtt``, ``conn_state``, ``packets_client``,
``close_kind`` ...; ``close.kind`` and ``packets.client`` name the same), plus
``client_addr``, ``client_port``, ``server_addr``, ``server_port`` and ``packets`` /
``payload_bytes`` (both sides). It has numbers, 'quoted text', true/false/none,
comparisons (``== != < <= > >= in``, ``not in``, chained ``0.01 < irtt < 0.1``),
``+ - * /``, ``and or not`` and parentheses::

    irtt > 0.1
    conn_state in ('REJ', 'S0') or syn_retransmits > 0
    server_port == 443 and not handshake_complete

It is parsed with Python's own parser into a syntax tree and only the node kinds above
are accepted and evaluated here: nothing is ever passed to eval. A missing value (an
``irtt`` without a handshake) makes an order comparison false, as in SQL.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    from .capture import Capture
    from .results import ConnBatch, Results

Value = Any
Fields = dict[str, Value]

_COMPARE: dict[type[ast.cmpop], Callable[[Value, Value], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_ARITH: dict[type[ast.operator], Callable[[Value, Value], Value]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_WORDS = {"true": True, "false": False, "none": None, "null": None}


def field_names() -> tuple[str, ...]:
    from .formats import CSV_COLUMNS

    return (*CSV_COLUMNS, "client_addr", "client_port", "server_addr", "server_port",
            "packets", "payload_bytes")


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def flat(rec: dict[str, Any]) -> dict[str, Any]:
    """One record as the flat ``--format csv`` columns (``--where`` conditions)."""
    hs, cl = rec["handshake"], rec["close"]
    row = {k: rec[k] for k in ("id", "client", "server", "first_packet", "last_packet",
                               "start", "end", "duration", "conn_state", "history",
                               "roles_guessed")}
    for side in ("client", "server"):
        row[f"packets_{side}"] = rec["packets"][side]
        row[f"payload_bytes_{side}"] = rec["payload_bytes"][side]
        opts = hs[f"{side}_options"] or {}
        for key in ("mss", "wscale", "sack_permitted", "timestamps"):
            row[f"{side}_{key}"] = opts.get(key)
        row[f"{side}_states"] = " ".join(name for _, name in rec["states"][side])
    row["handshake_complete"] = hs["complete"]
    for key in ("simultaneous_open", "fast_open", "syn_retransmits", "synack_retransmits",
                "client_isn", "server_isn", "irtt", "client_rtt", "server_rtt"):
        row[key] = hs[key]
    row["close_kind"] = cl["kind"]
    for key in ("initiator", "reset_by", "half_close", "time_wait"):
        row[f"close_{key}"] = cl[key]
    row["unexpected"] = len(rec["unexpected"])
    row["anomalies"] = " ".join(f"{name}={n}" for name, n in rec["anomalies"].items())
    return row


def record_fields(rec: dict[str, Any]) -> Fields:
    """A record's fields as a condition sees them (flat, as ``--format csv``)."""
    row = flat(rec)
    row["client_addr"], row["client_port"] = _split(rec["client"])
    row["server_addr"], row["server_port"] = _split(rec["server"])
    row["packets"] = row["packets_client"] + row["packets_server"]
    row["payload_bytes"] = row["payload_bytes_client"] + row["payload_bytes_server"]
    return row


class Where:
    """A parsed ``--where`` condition; ``Where(text)(fields) -> bool``."""

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            at = exc.offset or 0
            where = (f" at character {at}: {text.strip()[at - 1:]!r}"
                     if 0 < at <= len(text.strip()) else " (it ends too early)")
            if "=" in text and "==" not in text and not any(o in text for o in "<>!"):
                where += "; compare with =="
            raise self._error(f"{exc.msg}{where}") from None
        self._names: set[str] = set()
        self._tree = self._check(tree.body)

    def _error(self, message: str) -> UsageError:
        return UsageError(f"--where {self.text!r}: {message}")

    def _check(self, node: ast.expr) -> ast.expr:
        """Accept only the node kinds of the language; resolve field names."""
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                self._check(value)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.Not, ast.USub)):
                raise self._error(f"'{ast.unparse(node)}': only 'not' and '-' are allowed")
            self._check(node.operand)
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _COMPARE:
                    raise self._error(f"'{ast.unparse(node)}': use == != < <= > >= in, not in")
            self._check(node.left)
            for comparator in node.comparators:
                self._check(comparator)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _ARITH:
                raise self._error(f"'{ast.unparse(node)}': only + - * / are allowed")
            self._check(node.left)
            self._check(node.right)
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            for element in node.elts:
                self._check(element)
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float, str, bool)) and node.value is not None:
                raise self._error(f"{ast.unparse(node)} is not a number or 'text'")
        elif isinstance(node, (ast.Name, ast.Attribute)):
            name = self._field(node)
            if name.lower() not in _WORDS:
                self._names.add(name)
        else:
            raise self._error(f"'{ast.unparse(node)}' is not part of a condition (fields, "
                              "numbers, 'text', comparisons, + - * /, and or not)")
        return node

    def _field(self, node: ast.expr) -> str:
        """``close.kind`` -> ``close_kind``; ``handshake.irtt`` -> ``irtt``."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.insert(0, node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            raise self._error(f"'{ast.unparse(node)}' is not a field name")
        parts.insert(0, node.id)
        known = field_names()
        name = "_".join(parts)
        for candidate in (name, "_".join(parts[1:])):
            if candidate in known or (len(parts) == 1 and name.lower() in _WORDS):
                return candidate
        near = [f for f in known if parts[-1] in f][:4]
        hint = f" (did you mean {', '.join(near)}?)" if near else " (quote text: 'SF')"
        raise self._error(f"unknown field {'.'.join(parts)!r}{hint}")

    def __call__(self, fields: Fields) -> bool:
        try:
            return bool(self._eval(self._tree, fields))
        except TypeError:
            raise self._error("compares text with a number (quote text: 'SF')") from None
        except ZeroDivisionError:
            return False

    def _eval(self, node: ast.expr, row: Fields) -> Value:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.Name, ast.Attribute)):
            name = self._field(node)
            return _WORDS[name.lower()] if name not in row and name.lower() in _WORDS \
                else row[name]
        if isinstance(node, ast.BoolOp):
            values = (self._eval(v, row) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, row)
            if isinstance(node.op, ast.Not):
                return not operand
            return None if operand is None else -operand
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return tuple(self._eval(e, row) for e in node.elts)
        if isinstance(node, ast.BinOp):
            left, right = self._eval(node.left, row), self._eval(node.right, row)
            if left is None or right is None:
                return None
            return _ARITH[type(node.op)](left, right)
        assert isinstance(node, ast.Compare)
        left = self._eval(node.left, row)
        for op, comparator in zip(node.ops, node.comparators):
            right = self._eval(comparator, row)
            order = not isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn))
            if order and (left is None or right is None):
                return False  # a missing value is neither bigger nor smaller
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True


def _names(text: str | Collection[str] | None, known: tuple[str, ...], what: str
           ) -> frozenset[str] | None:
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    names = frozenset(i.strip() for i in items if i.strip())
    unknown = sorted(n for n in names if n not in known)
    if unknown or not names:
        raise UsageError(f"--{what}: {', '.join(unknown) or 'nothing'} is not one of "
                         f"{', '.join(known)}")
    return names


@dataclass(frozen=True)
class ConnFilter:
    """Which connections a capture reports (the file's ids are kept)."""

    states: frozenset[str] | None = None  # Zeek conn_state values
    closes: frozenset[str] | None = None  # close kinds
    where: Where | None = None

    @classmethod
    def make(cls, state: str | Collection[str] | None = None,
             close: str | Collection[str] | None = None,
             where: str | None = None) -> ConnFilter | None:
        """From the CLI/``read()`` arguments (comma-separated text or collections); None
        when nothing is filtered. Bad values are one-line UsageErrors."""
        from .records import CLOSE_KINDS, CONN_STATES

        if state is None and close is None and where is None:
            return None
        return cls(_names(state, tuple(CONN_STATES), "state"),
                   _names(close, tuple(CLOSE_KINDS), "close"),
                   Where(where) if where is not None else None)

    def select(self, capture: Capture | Results) -> list[int]:
        """The ids that pass, read a batch of connections at a time as columns (the
        record of each is only built for a condition)."""
        from .results import engine_batch

        keep: list[int] = []
        for start in range(0, len(capture), 4096):
            batch = engine_batch(capture.engine, start, min(4096, len(capture) - start))
            keep.extend(i for i, ok in zip(batch.values("id"), self.passes(batch)) if ok)
        return keep

    def keep(self, batch: ConnBatch) -> ConnBatch:
        """The connections of a batch that pass (a streamed read filters each batch)."""
        return batch.subset([i for i, ok in enumerate(self.passes(batch)) if ok])

    def passes(self, batch: ConnBatch) -> list[bool]:
        """Whether each connection of a batch passes."""
        from .records import CLOSE_KINDS, CONN_STATES

        states = None if self.states is None else \
            {CONN_STATES.index(s) for s in self.states}
        closes = None if self.closes is None else \
            {CLOSE_KINDS.index(c) for c in self.closes}
        ok = [True] * len(batch)
        for name, wanted in (("conn_state", states), ("close_kind", closes)):
            if wanted is not None:
                ok = [k and v in wanted for k, v in zip(ok, batch.values(name))]
        if self.where is not None:
            ok = [k and self.where(record_fields(rec)) for k, rec in zip(ok, batch.records())]
        return ok

    def describe(self) -> str:
        parts = []
        if self.states is not None:
            parts.append("state " + ",".join(sorted(self.states)))
        if self.closes is not None:
            parts.append("close " + ",".join(sorted(self.closes)))
        if self.where is not None:
            parts.append(f"where {self.where.text}")
        return "; ".join(parts)

