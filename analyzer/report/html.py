"""``write_html_report``: one self-contained HTML file (images inlined as base64 PNG, no
scripts, no network) with the capture summary, the overview, the connection table, and a
ladder and time-sequence graph for the connections most worth a look.

A capture of thousands of connections stays quick and small: diagrams are drawn for
``limit`` connections (20 by default) picked in turn from the resets, the failed
handshakes, the connections with retransmissions or lost segments, and the slowest
handshakes; every connection is in the table. Images are saved with fixed margins and
a 64-colour palette (a third of the bytes of full-colour PNG, same look for line art).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..words import plural
from ._data import all_packets_by_conn, human_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..results import Results

#: (done, total) diagrams drawn so far; the CLI shows it on a terminal.
Progress = Callable[[int, int], None]

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
DEFAULT_LIMIT = 20
PALETTE = 64  # colours of the PNGs: line art and text on white need few
# "retransmission" counts the fast and spurious ones too (tshark's field, anomalies.py)
TROUBLE = ("retransmission", "lost_segment")


def figure_png(fig: Figure) -> str:
    """The figure as a data: URL (the Agg canvas, no pyplot), as a palette PNG."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas: Any = FigureCanvasAgg(fig)
    fig.set_dpi(DPI)
    canvas.draw()
    rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    buf = io.BytesIO()
    rgb.quantize(PALETTE, method=Image.Quantize.FASTOCTREE).save(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig: Figure, alt: str, gid: str) -> str:
    return f'<img id="{gid}" alt="{html.escape(alt)}" src="{figure_png(fig)}">'


def write_html_report(captures_or_capture: Results | Iterable[Results], out_path: str, *,
                      limit: int | None = DEFAULT_LIMIT,
                      progress: Progress | None = None) -> None:
    """Write the report of one or several captures to ``out_path``.

    ``limit`` is how many connections of each capture get a ladder and a time-sequence
    graph (the most telling ones, see ``pick_diagrams``; ``None`` for every one); the
    table lists them all. ``progress(done, total)`` is called after each diagram pair.
    """
    from ..results import Results

    caps = [captures_or_capture] if isinstance(captures_or_capture, Results) else list(
        captures_or_capture)
    if limit is not None and limit < 0:
        raise UsageError(f"limit must be 0 or more, not {limit}")
    parts = ["<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
             "<title>TCP connections: " + html.escape(", ".join(c.path for c in caps)) +
             "</title>", f"<style>{STYLE}</style></head><body>",
             "<h1>TCP connections: handshakes, closes and RFC 9293 states</h1>"]
    total = sum(len(c) if limit is None else min(limit, len(c)) for c in caps)
    done = [0, total]
    for n, cap in enumerate(caps):
        parts.extend(_capture_section(cap, n, limit, progress, done))
    parts.append("</body></html>\n")
    try:
        with open(out_path, "w", encoding="utf-8") as out:
            out.write("\n".join(parts))
    except OSError as exc:
        raise UsageError(f"{out_path}: cannot write: {exc.strerror or exc}") from None


def pick_diagrams(recs: list[dict[str, Any]], limit: int | None) -> dict[int, str]:
    """Connection id -> why it is worth a diagram, for at most ``limit`` connections.

    Taken in turn from four queues so each kind of trouble is shown: resets, failed
    handshakes (refused, unanswered, incomplete), retransmissions and lost segments
    (most first), and the slowest handshakes; then, if room is left, the rest in order.
    """
    if limit is None or limit >= len(recs):
        return {r["id"]: _why(r) for r in recs}

    def retransmitted(r: dict[str, Any]) -> int:
        return int(sum(r["anomalies"].get(k, 0) for k in TROUBLE)) + _syn_again(r)

    from collections import deque

    queues = [deque(q) for q in (
        [r for r in recs if r["close"]["kind"] == "reset"],
        [r for r in recs if r["close"]["kind"] in ("refused", "unanswered", "incomplete")],
        sorted((r for r in recs if retransmitted(r)), key=lambda r: -retransmitted(r)),
        sorted((r for r in recs if r["handshake"]["irtt"] is not None),
               key=lambda r: -r["handshake"]["irtt"]))]
    chosen: dict[int, str] = {}
    while len(chosen) < limit and any(queues):
        for queue in queues:
            while queue and queue[0]["id"] in chosen:
                queue.popleft()
            if queue and len(chosen) < limit:
                rec = queue.popleft()
                chosen[rec["id"]] = _why(rec)
    for rec in recs:  # room left: the others, in order
        if len(chosen) >= limit:
            break
        chosen.setdefault(rec["id"], _why(rec))
    return dict(sorted(chosen.items()))


def _syn_again(rec: dict[str, Any]) -> int:
    """SYN and SYN-ACK retransmissions: Wireshark's analysis counts them as
    retransmissions too, so they are only added where it did not."""
    hs = rec["handshake"]
    syn = int(hs["syn_retransmits"] + hs["synack_retransmits"])
    return max(0, syn - int(rec["anomalies"].get("retransmission", 0)))


def _why(rec: dict[str, Any]) -> str:
    """What is notable about a connection, in a few words."""
    from .ladder import close_text

    hs, reasons = rec["handshake"], [close_text(rec["close"])]
    again = rec["anomalies"].get("retransmission", 0) + _syn_again(rec)
    syn = hs["syn_retransmits"] + hs["synack_retransmits"]
    if again:
        reasons.append(plural(again, "retransmission")
                       + (f" ({syn} of the handshake)" if syn else ""))
    if rec["anomalies"].get("lost_segment"):
        reasons.append(plural(rec["anomalies"]["lost_segment"], "segment") + " not captured")
    if hs["irtt"] is not None:
        reasons.append(f"handshake RTT {hs['irtt'] * 1e3:.3f} ms")
    return "; ".join(reasons)


def _capture_section(cap: Results, n: int, limit: int | None, progress: Progress | None,
                     done: list[int]) -> list[str]:
    from .ladder import ladder_plot
    from .overview import overview_plot
    from .sequence import sequence_plot

    rows = all_packets_by_conn(cap)
    if not rows and len(cap):
        again = cap.reread(-2)
        cap, rows = again, all_packets_by_conn(again)
    recs = list(cap.records())
    picked = pick_diagrams(recs, limit)
    out = [f"<h2 id='capture-{n}'>{html.escape(cap.path)}</h2>", _summary(cap, recs)]
    out.append("<h3>Overview</h3>")
    out.append(_img(overview_plot(cap), "capture overview", f"overview-{n}"))
    out.append("<h3>Connections</h3>")
    if len(picked) < len(recs):
        out.append(f"<p>Diagrams for {len(picked)} of {len(recs):,} connections, the most "
                   "telling ones: resets, failed handshakes, retransmissions, slowest "
                   "handshakes (<code>--limit N</code> for more). Their ids are links.</p>")
    out.append(_table(recs, n, picked))
    for i, why in picked.items():
        if i not in rows:
            continue
        rec, pk = recs[i], rows[i]
        out.append(f"<section class='conn' id='conn-{n}-{i}'><h3>Connection {i}: "
                   f"{html.escape(rec['client'])} → {html.escape(rec['server'])}</h3>")
        out.append(f"<p>{html.escape(why)}; conn_state <b>{rec['conn_state']}</b>, history "
                   f"<code>{html.escape(rec['history'])}</code>; "
                   f"{plural(len(pk), 'packet')}.</p>")
        out.append("<div class='pair'>")
        out.append(_img(ladder_plot(cap, i, packets=pk), f"ladder diagram of connection {i}",
                        f"ladder-{n}-{i}"))
        out.append(_img(sequence_plot(cap, i, packets=pk),
                        f"time-sequence graph of connection {i}", f"sequence-{n}-{i}"))
        out.append("</div></section>")
        done[0] += 1
        if progress is not None:
            progress(done[0], done[1])
    return out


def _summary(cap: Results, recs: list[dict[str, Any]]) -> str:
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


def _table(recs: list[dict[str, Any]], n: int, picked: dict[int, str]) -> str:
    head = ("id", "client", "server", "conn_state", "history", "close", "by", "TIME_WAIT",
            "iRTT (ms)", "packets c/s", "bytes c/s")
    lines = ["<table class='conns'><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in recs:
        irtt = r["handshake"]["irtt"]
        ident = (f"<a href='#conn-{n}-{r['id']}'>{r['id']}</a>" if r["id"] in picked
                 else str(r["id"]))
        cells = [ident, html.escape(r["client"]),
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
