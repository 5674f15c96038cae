"""Jupyter side: rich HTML for captures and connections, Parquet export, and
:func:`sniff`, a live capture that works inside a running notebook.

pyshark's LiveCapture runs its own asyncio loop, which fails inside Jupyter ("Cannot
run the event loop while another loop is running"). :func:`sniff` uses
:class:`analyzer.live.LiveSession`, which captures in a thread, so the kernel's event
loop is never touched; the cell only sleeps and redraws a display handle.
"""

from __future__ import annotations

import html
import io
import os
import time
from typing import TYPE_CHECKING, Any

from .words import plural

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .capture import Capture
    from .connection import Connection

PLOT_MISSING = ("<p><i>plots need matplotlib: <code>pip install "
                "'handshake-analyzer[notebook]'</code></i></p>")


def figure_svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prologue)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.find("<svg"):]


def _table(rows: list[tuple[str, Any]], *, header: tuple[str, str] | None = None) -> str:
    head = (f"<tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr>"
            if header else "")
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                   f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                   for k, v in rows)
    return f"<table>{head}{body}</table>"


def _plot(draw: Any) -> str:
    try:
        fig = draw()
    except ImportError:  # matplotlib (or the report module) is not installed
        return PLOT_MISSING
    return figure_svg(fig)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f} ms"


def capture_summary_html(cap: Capture, *, title: str | None = None) -> str:
    """Counts only (no plot): the header of :func:`capture_html` and the live view."""
    frame = cap.connections
    stats = cap.engine.stats()
    notes = "".join(f"<p style='color:#a60'>{html.escape(w)}</p>" for w in cap.warnings)
    if cap.error is not None:
        notes += f"<p style='color:#c00'>{html.escape(str(cap.error))}</p>"
    kinds = frame["close_kind"].value_counts(sort=False)
    states = frame["conn_state"].value_counts(sort=False)
    counts = (
        "<div style='display:flex;gap:2em;align-items:flex-start'>"
        + _table([(k, n) for k, n in kinds.items() if n], header=("close kind", "connections"))
        + _table([(k, n) for k, n in states.items() if n], header=("conn_state", "connections"))
        + "</div>")
    skipped = stats["frames"] - stats["tcp"]
    line = (f"{plural(len(cap), 'TCP connection')}, "
            f"{plural(stats['tcp'], 'TCP packet')}")
    if skipped:
        line += f", {plural(skipped, 'other packet')} skipped"
    return f"<h4>{html.escape(str(title or cap.path))}</h4><p>{line}</p>{notes}{counts}"


def capture_html(cap: Capture) -> str:
    """Capture's ``_repr_html_``: counts by close kind and conn_state, the overview
    plot and the first connections."""
    from .report import overview_plot

    parts = [capture_summary_html(cap)]
    if len(cap):
        parts.append(_plot(lambda: overview_plot(cap)))
        shown = ["client", "server", "conn_state", "history", "close_kind", "close_initiator",
                 "client_state", "server_state", "irtt"]
        parts.append(cap.connections[shown].head(20).to_html(max_rows=20))
        if len(cap) > 20:
            parts.append(f"<p>... {len(cap) - 20} more: <code>capture.connections</code></p>")
    return "<div class='handshake-capture'>" + "".join(parts) + "</div>"


def connection_html(conn: Connection) -> str:
    """Connection's ``_repr_html_``: a summary table and the ladder as inline SVG."""
    from .report import ladder_plot

    rec = conn.record
    hs, close = rec["handshake"], rec["close"]
    rows: list[tuple[str, Any]] = [
        ("client", rec["client"]), ("server", rec["server"]),
        ("packets (client / server)", f"{rec['packets']['client']} / {rec['packets']['server']}"),
        ("payload bytes (client / server)",
         f"{rec['payload_bytes']['client']} / {rec['payload_bytes']['server']}"),
        ("duration", f"{rec['duration']:.6f} s"),
        ("handshake", "complete" if hs["complete"] else "not complete"),
        ("SYN / SYN-ACK retransmits", f"{hs['syn_retransmits']} / {hs['synack_retransmits']}"),
        ("iRTT (client / server side)",
         f"{_ms(hs['irtt'])} ({_ms(hs['client_rtt'])} / {_ms(hs['server_rtt'])})"),
        ("close", f"{close['kind']}" + (f" by {close['initiator']}" if close["initiator"]
                                         else "")),
        ("TIME_WAIT", close["time_wait"] or "-"),
        ("half-close", "yes" if close["half_close"] else "no"),
        ("conn_state / history", f"{rec['conn_state']} / {rec['history']}"),
        ("client states", " → ".join(s for _, s in rec["states"]["client"])),
        ("server states", " → ".join(s for _, s in rec["states"]["server"])),
    ]
    if rec["unexpected"]:
        rows.append(("unexpected inputs", ", ".join(
            f"pkt {u['packet']} {u['endpoint']} {u['input']} in {u['state']}"
            for u in rec["unexpected"])))
    if rec["roles_guessed"]:
        rows.append(("roles", "guessed (no SYN seen)"))
    return (f"<div class='handshake-connection'><h4>connection {conn.id}</h4>"
            f"<div style='display:flex;gap:2em;align-items:flex-start'>{_table(rows)}"
            f"<div>{_plot(lambda: ladder_plot(conn.capture, conn.id))}</div></div></div>")


def export_parquet(cap: Capture, directory: str) -> list[str]:
    """Write connections, packets and transitions as Parquet files in ``directory``."""
    os.makedirs(directory, exist_ok=True)
    written = []
    for name in ("connections", "packets", "transitions"):
        path = os.path.join(directory, f"{name}.parquet")
        getattr(cap, name).to_parquet(path, index=False)
        written.append(path)
    return written


def _in_ipython() -> bool:
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


class _LiveView:
    """A display handle redrawn with the capture's counts while it fills."""

    def __init__(self, session: Any, title: str) -> None:
        from IPython.display import HTML, display

        self.session = session
        self.title = title
        self.started = time.monotonic()
        self._html = HTML
        self.handle = display(HTML(self._render("starting")),
                              display_id=True)

    def _render(self, status: str) -> str:
        with self.session.lock:
            body = capture_summary_html(self.session.capture, title=self.title)
        elapsed = time.monotonic() - self.started
        return f"{body}<p><b>{html.escape(status)}</b>, {elapsed:.1f} s</p>"

    def update(self, status: str) -> None:
        self.handle.update(self._html(self._render(status)))


def _refresh_until_done(session: Any, view: _LiveView, refresh: float) -> None:
    """The live display of a background capture, until it ends."""
    while session.running:
        time.sleep(refresh)
        view.update("capturing")
    session.wait()
    view.update("finished")
