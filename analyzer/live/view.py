"""What a live capture shows: a table of connections (both endpoints' RFC 9293 states,
handshake RTT, packets, bytes, how each ended) redrawn as packets arrive, with a
scrolling log of state changes under it. Closed connections stay visible for
``linger`` seconds, then fold into per-ending counters.

``LiveModel`` only keeps the view's data (testable without a terminal); ``run_view``
draws it with rich on a terminal, or prints the log lines when output is not one.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from ..fit import Column, Step, fit
from ..formats import SHORT_STATE
from ..fsm import TcpState
from ..results import engine_batch
from ..words import plural
from .session import LiveSession

SHORT = {s.name: s.name.replace("_", " ") for s in TcpState}


def clock(t: float) -> str:
    """``12:00:01.123456`` in local time."""
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1e6):06d}"


def log_line(ev: dict[str, Any]) -> str:
    """One state change as the log shows it."""
    head = f"{clock(ev['time'])} {ev['client']} -> {ev['server']}  {ev['endpoint']} "
    if ev["how"] == "unexpected":
        return head + f"{ev['to']}: unexpected {ev['input']}"
    if ev["how"] == "inferred":
        return head + f"{ev['to']} (inferred)"
    return head + (f"{ev['from']} -> {ev['to']}" if ev["from"] else f"-> {ev['to']}")


@dataclass
class Row:
    client: str
    server: str
    client_state: str = ""
    server_state: str = ""
    irtt: float | None = None
    ended: str = ""
    closed_at: float | None = None  # monotonic time it closed


class LiveModel:
    """The view's state, updated from session events."""

    def __init__(self, linger: float = 5.0, log_size: int = 200) -> None:
        self.linger = linger
        self.rows: OrderedDict[int, Row] = OrderedDict()
        self.folded: Counter[str] = Counter()
        self.log: deque[str] = deque(maxlen=log_size)

    def apply(self, events: list[dict[str, Any]], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for ev in events:
            kind = ev["event"]
            if kind == "final":
                continue
            row = self.rows.get(ev["id"])
            if row is None:
                if kind != "state":
                    continue
                row = self.rows[ev["id"]] = Row(ev["client"], ev["server"])
            if kind == "state":
                self.log.append(log_line(ev))
                if ev["how"] != "unexpected":
                    setattr(row, f"{ev['endpoint']}_state", ev["to"])
            elif kind == "handshake":
                row.irtt = ev["irtt"]
            elif kind == "closed":
                row.ended, row.closed_at = ev["ended"], now
        self.fold(now)

    def fold(self, now: float) -> None:
        """Closed connections older than ``linger`` leave the table for the counters."""
        for conn_id in [i for i, r in self.rows.items()
                        if r.closed_at is not None and now - r.closed_at >= self.linger]:
            self.folded[_kind(self.rows.pop(conn_id).ended)] += 1


def _kind(ended: str) -> str:
    return ended.split(",")[0]


def _rtt(value: float | None) -> str:
    return "" if value is None else f"{value * 1000:.2f}ms"


def _short_ended(ended: str) -> str:
    """``closed by client`` -> ``closed:c``, ``reset by server`` -> ``reset:s``."""
    how, _, who = ended.partition(" by ")
    return f"{how}:{who[0]}" if who else how


# What the live table gives up while it is too wide, in order (analyzer.fit). At 80
# columns: id, client, server, both states as two letters (ES/TW), RTT, how it ended;
# at 120 and more the states in full and packets and bytes per side.
LIVE_STEPS: tuple[Step, ...] = (
    ("drop", "bytes"), ("elide", "client+server", 33), ("elide", "client+server", 27),
    ("drop", "pkts"), ("swap", "cstate+sstate", "states"), ("short", "ended"),
    ("elide", "client+server", 21), ("drop", "rtt"), ("elide", "client+server", 15))


def live_columns(model: LiveModel, rows: list[tuple[int, Row]], raws: dict[int, Any],
                 width: int) -> list[Column]:
    """The live table's columns at ``width`` characters."""
    def cells(get: Callable[[int, Row], str]) -> list[str]:
        return [get(i, row) for i, row in rows]

    short = {s.name: SHORT_STATE[s.name] for s in TcpState}
    columns = [
        Column("id", "id", cells(lambda i, r: str(i)), right=True),
        Column("client", "client", cells(lambda i, r: r.client), endpoint=True, min_width=21),
        Column("server", "server", cells(lambda i, r: r.server), endpoint=True, min_width=21),
        Column("cstate", "client state", cells(lambda i, r: SHORT.get(r.client_state, ""))),
        Column("sstate", "server state", cells(lambda i, r: SHORT.get(r.server_state, ""))),
        Column("states", "c/s", cells(lambda i, r: f"{short.get(r.client_state, '--')}/"
                                                   f"{short.get(r.server_state, '--')}"),
               shown=False),
        Column("rtt", "RTT", cells(lambda i, r: _rtt(r.irtt)), right=True),
        Column("pkts", "pkts c/s", cells(lambda i, r: f"{raws[i].packets_client}/"
                                                      f"{raws[i].packets_server}"), right=True),
        Column("bytes", "bytes c/s", cells(lambda i, r: f"{raws[i].payload_bytes_client}/"
                                                        f"{raws[i].payload_bytes_server}"),
               right=True),
        Column("ended", "ended", cells(lambda i, r: r.ended),
               short_cells=cells(lambda i, r: _short_ended(r.ended))),
    ]
    return fit(columns, LIVE_STEPS, width)


def render(model: LiveModel, session: LiveSession, height: int, width: int = 80) -> Any:
    """The table and the log for a terminal of ``width`` x ``height`` characters."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    st = session.stats()
    drops = "?" if st["kernel_drops"] is None else st["kernel_drops"]
    title = (f"{session.iface} [{session.bpf}] via {st['engine']}: "
             f"{plural(st['packets'], 'packet')}, {plural(st['connections'], 'connection')}, "
             f"kernel drops {drops}")
    log_rows = max(3, height // 4)
    room = max(3, height - log_rows - 6)
    shown = list(model.rows.items())[-room:]
    with session.lock:
        raws = {i: engine_batch(session.capture.engine, i, 1).row(0) for i, _ in shown}
    columns = live_columns(model, shown, raws, width)
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False,
                  expand=False)
    for column in columns:
        table.add_column(column.texts()[0], justify="right" if column.right else "left",
                         no_wrap=True, width=column.width(), overflow="ellipsis")
    texts = [column.texts()[1] for column in columns]
    for k, (_, row) in enumerate(shown):
        table.add_row(*(t[k] for t in texts), style="dim" if row.closed_at is not None else "")
    hidden = len(model.rows) - len(shown)
    parts: list[Any] = [Text(title, style="bold", no_wrap=True, overflow="ellipsis"), table]
    summary = [f"{n} {kind}" for kind, n in model.folded.most_common()]
    if hidden:
        summary.insert(0, f"{hidden} older rows not shown")
    if summary:
        parts.append(Text("earlier: " + ", ".join(summary), style="cyan"))
    log = list(model.log)[-log_rows:] or ["waiting for packets..."]
    parts.extend(Text(line, style="green", no_wrap=True, overflow="ellipsis") for line in log)
    return Group(*parts)


def run_view(session: LiveSession, out: TextIO, fmt: str, linger: float = 5.0) -> None:
    """Show events until the session ends (the caller stops it on Ctrl-C / SIGTERM)."""
    if fmt == "jsonl":
        _run_jsonl(session, out)
    elif out.isatty():
        _run_rich(session, out, linger)
    else:
        _run_lines(session, out)


def _run_jsonl(session: LiveSession, out: TextIO) -> None:
    while True:
        done = session.wait(0.1)
        for ev in session.events():
            out.write(json.dumps(ev) + "\n")
            out.flush()
        if done:
            return


def _run_lines(session: LiveSession, out: TextIO) -> None:
    """Not a terminal: the log of state changes and closes, one line each."""
    while True:
        done = session.wait(0.1)
        for ev in session.events():
            if ev["event"] == "state":
                out.write(log_line(ev) + "\n")
            elif ev["event"] == "closed":
                out.write(f"{clock(ev['time'])} {ev['client']} -> {ev['server']}  "
                          f"{ev['ended']}\n")
        out.flush()
        if done:
            return


def _run_rich(session: LiveSession, out: TextIO, linger: float) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console(file=out)
    model = LiveModel(linger=linger)
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            done = session.wait(0.1)
            model.apply(session.events())
            live.update(render(model, session, console.size.height, console.size.width),
                        refresh=True)
            if done:
                return


def print_summary(session: LiveSession, err: TextIO = sys.stderr) -> None:
    st = session.stats()
    drops = "unknown" if st["kernel_drops"] is None else st["kernel_drops"]
    line = (f"handshake: {plural(st['packets'], 'packet', grouped=False)} ({st['tcp']} TCP), "
            f"{plural(st['connections'], 'connection', grouped=False)} in "
            f"{st['seconds']:.1f} s via "
            f"{st['engine']}; kernel drops: {drops}")
    if session.write:
        line += f"; saved {session.write} ({st['bytes_written']} bytes)"
    print(line, file=err)
