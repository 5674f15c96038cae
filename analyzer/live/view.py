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
from dataclasses import dataclass
from typing import Any, TextIO

from ..fsm import TcpState
from ..records import RawConn
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


def render(model: LiveModel, session: LiveSession, height: int) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    st = session.stats()
    drops = "?" if st["kernel_drops"] is None else st["kernel_drops"]
    title = (f"{session.iface} [{session.bpf}] via {st['engine']}: {st['packets']} packets, "
             f"{st['connections']} connections, kernel drops {drops}")
    table = Table(title=title, title_justify="left", expand=True, pad_edge=False)
    for name, justify in (("id", "right"), ("client", "left"), ("server", "left"),
                          ("client state", "left"), ("server state", "left"),
                          ("RTT", "right"), ("pkts c/s", "right"), ("bytes c/s", "right"),
                          ("ended", "left")):
        wide = name in ("client", "server")  # an address is never cut
        table.add_column(name, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                         min_width=21 if wide else None, ratio=None)
    log_rows = max(3, height // 4)
    room = max(3, height - log_rows - 8)
    shown = list(model.rows.items())[-room:]
    with session.lock:
        counts = {i: RawConn._make(session.capture.engine.conn(i)) for i, _ in shown}
    for conn_id, row in shown:
        raw = counts[conn_id]
        style = "dim" if row.closed_at is not None else ""
        table.add_row(str(conn_id), row.client, row.server, SHORT.get(row.client_state, ""),
                      SHORT.get(row.server_state, ""), _rtt(row.irtt),
                      f"{raw.packets_client}/{raw.packets_server}",
                      f"{raw.payload_client}/{raw.payload_server}", row.ended, style=style)
    hidden = len(model.rows) - len(shown)
    parts: list[Any] = [table]
    summary = [f"{n} {kind}" for kind, n in model.folded.most_common()]
    if hidden:
        summary.insert(0, f"{hidden} older rows not shown")
    if summary:
        parts.append(Text("earlier: " + ", ".join(summary), style="cyan"))
    parts.append(Text("\n".join(list(model.log)[-log_rows:]) or "waiting for packets...",
                      style="green"))
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
            live.update(render(model, session, console.size.height), refresh=True)
            if done:
                return


def print_summary(session: LiveSession, err: TextIO = sys.stderr) -> None:
    st = session.stats()
    drops = "unknown" if st["kernel_drops"] is None else st["kernel_drops"]
    line = (f"handshake: {st['packets']} packets ({st['tcp']} TCP), {st['connections']} "
            f"connections in {st['seconds']:.1f} s via {st['engine']}; kernel drops: {drops}")
    if session.write:
        line += f"; saved {session.write} ({st['bytes_written']} bytes)"
    print(line, file=err)
