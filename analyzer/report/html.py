"""``write_html_report``: one self-contained HTML file (images inlined as base64 PNG, no
scripts, no network) with the capture summary, the overview, the connection table, and a
ladder and time-sequence graph per connection."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ._data import all_packets_by_conn, human_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..capture import Capture

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1250px;
color:#222;padding:0 1em}
h1{font-size:1.5em}h2{border-bottom:2px solid #1f5fbf;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;width:100%}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left}th{background:#eef3fb}
tr:nth-child(even){background:#fafafa}td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;border:1px solid #ddd;margin:.5em 0}
.pair{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1em;align-items:start}
.summary td:first-child{font-weight:bold;width:14em}.warn{color:#b35900}
section.conn{margin-top:1.5em;border-top:1px solid #ddd}
"""
DPI = 90


def figure_png(fig: Figure) -> str:
    """The figure as a data: URL (the Agg canvas, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig: Figure, alt: str, gid: str) -> str:
    return f'<img id="{gid}" alt="{html.escape(alt)}" src="{figure_png(fig)}">'


def write_html_report(captures_or_capture: Capture | Iterable[Capture], out_path: str, *,
                      limit: int | None = None) -> None:
    """Write the report of one or several captures to ``out_path``.

    ``limit`` draws the ladder and time-sequence graph of only the first N connections
    of each capture (the table still lists every one).
    """
    from ..capture import Capture

    caps = [captures_or_capture] if isinstance(captures_or_capture, Capture) else list(
        captures_or_capture)
    parts = ["<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
             "<title>TCP connections: " + html.escape(", ".join(c.path for c in caps)) +
             "</title>", f"<style>{STYLE}</style></head><body>",
             "<h1>TCP connections: handshakes, closes and RFC 9293 states</h1>"]
    for n, cap in enumerate(caps):
        parts.extend(_capture_section(cap, n, limit))
    parts.append("</body></html>\n")
    try:
        with open(out_path, "w", encoding="utf-8") as out:
            out.write("\n".join(parts))
    except OSError as exc:
        raise UsageError(f"{out_path}: cannot write: {exc.strerror or exc}") from None


def _capture_section(cap: Capture, n: int, limit: int | None) -> list[str]:
    from .ladder import ladder_plot
    from .overview import overview_plot
    from .sequence import sequence_plot

    rows = all_packets_by_conn(cap)
    if not rows and len(cap):
        again = cap.reread(-2)
        if not _same(cap, again):
            raise UsageError(f"{cap.path}: no packet rows recorded; read it with record=-2 "
                             "(the same options) to report on it")
        cap, rows = again, all_packets_by_conn(again)
    recs = list(cap.records())
    out = [f"<h2 id='capture-{n}'>{html.escape(cap.path)}</h2>", _summary(cap, recs)]
    out.append("<h3>Overview</h3>")
    out.append(_img(overview_plot(cap), "capture overview", f"overview-{n}"))
    out.append("<h3>Connections</h3>")
    out.append(_table(recs, n))
    shown = recs if limit is None else recs[:max(limit, 0)]
    if len(shown) < len(recs):
        out.append(f"<p>Diagrams for the first {len(shown)} of {len(recs)} connections "
                   f"(<code>--limit</code>).</p>")
    for rec in shown:
        i = rec["id"]
        if i not in rows:
            continue
        pk = rows[i]
        out.append(f"<section class='conn' id='conn-{n}-{i}'><h3>Connection {i}: "
                   f"{html.escape(rec['client'])} → {html.escape(rec['server'])}</h3>")
        out.append(f"<p>{rec['close']['kind'].replace('_', ' ')} close"
                   f"{', started by ' + rec['close']['initiator'] if rec['close']['initiator'] else ''}"
                   f"; conn_state <b>{rec['conn_state']}</b>, history <code>"
                   f"{html.escape(rec['history'])}</code>; {len(pk)} packets.</p>")
        out.append("<div class='pair'>")
        out.append(_img(ladder_plot(cap, i, packets=pk), f"ladder diagram of connection {i}",
                        f"ladder-{n}-{i}"))
        out.append(_img(sequence_plot(cap, i, packets=pk),
                        f"time-sequence graph of connection {i}", f"sequence-{n}-{i}"))
        out.append("</div></section>")
    return out


def _same(cap: Capture, again: Capture) -> bool:
    """Reading the file again gave the same connections (the file did not change)."""
    return len(cap) == len(again) and all(
        cap.raw(i)[:8] == again.raw(i)[:8] for i in range(len(cap)))


def _summary(cap: Capture, recs: list[dict[str, Any]]) -> str:
    from collections import Counter

    kinds = Counter(r["close"]["kind"] for r in recs)
    items = [("connections", f"{len(recs):,}"),
             ("TCP packets", f"{sum(r['packets']['client'] + r['packets']['server'] for r in recs):,}"),
             ("payload", human_bytes(sum(r['payload_bytes']['client'] +
                                         r['payload_bytes']['server'] for r in recs))),
             ("closes", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in kinds.most_common())),
             ("handshakes completed", str(sum(r["handshake"]["complete"] for r in recs)))]
    if recs:
        items.append(("duration", f"{max(r['end'] for r in recs) - min(r['start'] for r in recs):.3f} s"))
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in items)
    for w in cap.warnings:
        body += f"<tr><td>warning</td><td class='warn'>{html.escape(w)}</td></tr>"
    if cap.error:
        body += f"<tr><td>error</td><td class='warn'>{html.escape(str(cap.error))}</td></tr>"
    return f"<table class='summary'>{body}</table>"


def _table(recs: list[dict[str, Any]], n: int) -> str:
    head = ("id", "client", "server", "conn_state", "history", "close", "by", "TIME_WAIT",
            "iRTT (ms)", "packets c/s", "bytes c/s")
    lines = ["<table class='conns'><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in recs:
        irtt = r["handshake"]["irtt"]
        cells = [f"<a href='#conn-{n}-{r['id']}'>{r['id']}</a>", html.escape(r["client"]),
                 html.escape(r["server"]), r["conn_state"], html.escape(r["history"]),
                 r["close"]["kind"], r["close"]["initiator"] or "",
                 r["close"]["time_wait"] or "", "" if irtt is None else f"{irtt * 1e3:.3f}",
                 f"{r['packets']['client']}/{r['packets']['server']}",
                 f"{r['payload_bytes']['client']}/{r['payload_bytes']['server']}"]
        lines.append("<tr>" + "".join(
            f"<td class='n'>{c}</td>" if k in (0, 8, 9, 10) else f"<td>{c}</td>"
            for k, c in enumerate(cells)) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)
