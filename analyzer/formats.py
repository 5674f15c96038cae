"""Writers for ``handshake read``: table, jsonl, json, csv and Zeek's conn.log."""

from __future__ import annotations

import json
import re
import textwrap
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any, TextIO

from .fit import Column, Step, fit, render_lines
from .records import CLOSE_KINDS, CONN_STATES, STATE_NAMES, WHO
from .results import UNSET, ConnBatch, Results
from .words import plural

FORMATS = ("table", "jsonl", "json", "csv", "zeek")

SHORT_STATE = {"CLOSED": "CL", "LISTEN": "LI", "SYN_SENT": "SS", "SYN_RECEIVED": "SR",
               "ESTABLISHED": "ES", "FIN_WAIT_1": "F1", "FIN_WAIT_2": "F2",
               "CLOSE_WAIT": "CW", "CLOSING": "CG", "LAST_ACK": "LA", "TIME_WAIT": "TW"}


def write(captures: Iterable[Results], fmt: str, out: TextIO) -> None:
    """The whole output of ``handshake read``: head, one part per capture, tail. A
    parallel read (analyzer.parallel) writes the same pieces, each part made where its
    file was read, so the bytes are the same."""
    caps = list(captures)
    merged = any(cap.merged for cap in caps)
    out.write(head(fmt, len(caps), merged))
    for index, cap in enumerate(caps):
        write_part(cap, fmt, index, len(caps), out)
    out.write(tail(fmt, len(caps)))


def head(fmt: str, count: int, merged: bool = False) -> str:
    """What comes before the first capture's part (``count`` captures in all)."""
    if fmt == "csv":
        columns = (("file",) if count > 1 else ()) + CSV_COLUMNS
        return ",".join(columns + (MERGED_COLUMNS if merged else ())) + "\n"
    if fmt == "json":
        return "[\n" if count > 1 else ""
    if fmt == "zeek":
        return ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n"
                "#unset_field\t-\n#path\tconn\n"
                f"#open\t{time.strftime('%Y-%m-%d-%H-%M-%S')}\n#fields\t"
                + "\t".join(ZEEK_FIELDS) + "\n#types\t" + "\t".join(ZEEK_TYPES) + "\n")
    return ""


def tail(fmt: str, count: int) -> str:
    if fmt == "json":
        return "\n]\n" if count > 1 else "\n"
    if fmt == "zeek":
        return f"#close\t{time.strftime('%Y-%m-%d-%H-%M-%S')}\n"
    return ""


def write_part(cap: Results, fmt: str, index: int, count: int, out: TextIO) -> None:
    """Capture number ``index`` (of ``count``) in format ``fmt``."""
    many = count > 1
    if fmt == "jsonl":
        _jsonl_part(cap, many, out)
    elif fmt == "json":
        _json_part(cap, index, many, out)
    elif fmt == "csv":
        _csv_part(cap, many, out)
    elif fmt == "table":
        _table_part(cap, many, out)
    elif fmt == "zeek":
        for batch in cap.batches():
            _put(out, batch.render("zeek", uid_seed=cap.path))
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _tag(rec: dict[str, Any], cap: Results, many: bool) -> dict[str, Any]:
    if many:
        rec["file"] = cap.path
    if cap.merged:  # several files read as one: where the first and last packets are
        rec.update(cap.merged.fields(rec["first_packet"], rec["last_packet"]))
    return rec


def _merged_jsonl(cap: Results, lines: str) -> str:
    """The engine's jsonl lines of a merged capture with the fields naming files."""
    assert cap.merged is not None
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    out = []
    for line in lines.splitlines():
        numbers = _PACKETS.search(line)
        assert numbers is not None
        extra = cap.merged.fields(int(numbers[1]), int(numbers[2]))
        out.append(line[:-1] + "," + dumps(extra)[1:] + "\n")
    return "".join(out)


_PACKETS = re.compile(r'"first_packet":(\d+),"last_packet":(\d+)')


def write_jsonl(captures: list[Results], out: TextIO) -> None:
    """One object per line. With one file the engine writes the lines itself (the same
    objects as ConnBatch.records, tests/test_jsonl.py checks); several files add a
    "file" key to each."""
    write(captures, "jsonl", out)


def _put(out: TextIO, data: bytes) -> None:
    """Engine-rendered UTF-8 text: straight to the binary stream when there is one."""
    buffer = getattr(out, "buffer", None)
    if buffer is not None:
        out.flush()
        buffer.write(data)
    else:
        out.write(data.decode())


def _jsonl_lines(cap: Results, batch: ConnBatch, many: bool) -> bytes:
    """A batch's jsonl lines (rendered by the engine from the columns), with "file" for
    several captures and the file fields of a merged one."""
    lines = batch.render("jsonl", tag=cap.path if many else None)
    return _merged_jsonl(cap, lines.decode()).encode() if cap.merged else lines


def _jsonl_part(cap: Results, many: bool, out: TextIO) -> None:
    for batch in cap.batches():
        _put(out, _jsonl_lines(cap, batch, many))


def write_json(captures: list[Results], out: TextIO) -> None:
    write(captures, "json", out)


def _json_part(cap: Results, index: int, many: bool, out: TextIO) -> None:
    """``{"file", "summary", "connections": [...]}`` with one jsonl object per line (the
    same objects as --format jsonl); one level deeper in a list of several captures."""
    pad = " " if many else ""
    head = json.dumps({"file": cap.path, "summary": summary(cap)}, indent=1)[:-2]
    out.write(("" if index == 0 else ",\n") + pad + head.replace("\n", "\n" + pad)
              + f',\n{pad} "connections": [')
    sep = f"\n{pad}  ".encode()
    first = True
    for batch in cap.batches():
        lines = _jsonl_lines(cap, batch, False)
        if lines:
            _put(out, (sep if first else b"," + sep) + lines[:-1].replace(b"\n", b"," + sep))
            first = False
    out.write(f"\n{pad} ]\n{pad}}}")


def summary(cap: Results) -> dict[str, Any]:
    kinds: Counter[int] = Counter()
    for batch in cap.batches():
        kinds.update(batch.values("close_kind"))
    doc = {"connections": len(cap.ids()), "close_kinds": {CLOSE_KINDS[k]: n for k, n in
                                                          sorted(kinds.items())},
           "counters": cap.stats, "warnings": cap.warnings,
           "error": str(cap.error) if cap.error else None}
    if cap.selected is not None:  # the connection filters chose these of the file's
        doc["connections_in_file"] = len(cap)
    return doc


#: The --format csv columns (rendered by the engine, csrc/columns.c render_csv): the
#: jsonl fields flattened; ``unexpected`` is the number of unexpected inputs and
#: ``anomalies`` e.g. ``retransmission=3 duplicate_ack=5``.
CSV_COLUMNS = ("id", "client", "server", "first_packet", "last_packet", "start", "end",
               "duration", "packets_client", "packets_server", "payload_bytes_client",
               "payload_bytes_server", "conn_state", "history", "handshake_complete",
               "simultaneous_open", "fast_open", "syn_retransmits", "synack_retransmits",
               "client_isn", "server_isn", "irtt", "client_rtt", "server_rtt", "client_mss", "client_wscale",
               "client_sack_permitted", "client_timestamps", "server_mss", "server_wscale",
               "server_sack_permitted", "server_timestamps", "close_kind", "close_initiator",
               "close_reset_by", "close_half_close", "close_time_wait", "client_states",
               "server_states", "roles_guessed", "unexpected", "anomalies")


#: Columns naming the files of a connection's first and last packets (merged captures).
MERGED_COLUMNS = ("first_file", "first_file_packet", "last_file", "last_file_packet")


def write_csv(captures: list[Results], out: TextIO) -> None:
    write(captures, "csv", out)


def _csv_part(cap: Results, many: bool, out: TextIO) -> None:
    for batch in cap.batches():
        rows = batch.render("csv", tag=cap.path if many else None)
        if cap.merged:  # the file fields of a merged capture, after the others
            lines = rows.decode().splitlines()
            rows = "".join(
                line + "," + ",".join(_csv_cell(v) for v in cap.merged.fields(a, b).values())
                + "\n" for line, a, b in zip(lines, batch.values("first_packet"),
                                             batch.values("last_packet"))).encode()
        _put(out, rows)


def _csv_cell(value: str | int) -> str:
    text = str(value)
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.2f}ms" if seconds < 10 else f"{seconds:.1f}s"


def write_table(captures: list[Results], out: TextIO, width: int | None = None) -> None:
    """The table of ``handshake read`` (see _table_part), ``width`` columns wide."""
    out.write(head("table", len(captures)))
    for index, cap in enumerate(captures):
        _table_part(cap, len(captures) > 1, out, width)


# What the table gives up while it is too wide, in order (analyzer.fit): the extra
# columns a wide terminal shows, then the endpoints' middles, then packets, RTT, states.
# At 80 columns: id, client, server, c/s, close, iRTT, pkts, IPv6 endpoints elided.
TABLE_STEPS: tuple[Step, ...] = (
    ("drop", "history"), ("drop", "bytes"), ("drop", "duration"), ("drop", "zeek"),
    ("elide", "client+server", 33), ("elide", "client+server", 27),
    ("elide", "client+server", 21), ("drop", "pkts"), ("elide", "client+server", 17),
    ("drop", "irtt"), ("drop", "states"), ("elide", "client+server", 13))


def table_width() -> int:
    """The terminal's width ($COLUMNS first); 80 when the output is not a terminal."""
    import shutil

    return shutil.get_terminal_size((80, 24)).columns


def table_lines(cap: Results, width: int) -> tuple[list[str], Counter[str]]:
    """The table's header and rows at ``width`` columns, and the close kinds counted
    (read from the results' columns, analyzer.results)."""
    codes: Counter[int] = Counter()
    cells: dict[str, list[str]] = {k: [] for k in ("id", "client", "server", "states", "close",
                                                   "irtt", "pkts", "zeek", "duration",
                                                   "bytes", "history")}
    short = ["--", *(SHORT_STATE[name] for name in STATE_NAMES)]  # indexed by code + 1
    close_text = [_close_text(kind, who) for kind in range(len(CLOSE_KINDS))
                  for who in range(len(WHO))]  # indexed by kind * 4 + initiator
    for batch in cap.batches():  # column by column: no Python object per row but text
        v = batch.values
        codes.update(v("close_kind"))
        cells["id"] += map(str, v("id"))
        cells["client"] += v("client")
        cells["server"] += v("server")
        cells["states"] += [f"{short[c + 1]}/{short[s + 1]}"
                            for c, s in zip(v("client_state"), v("server_state"))]
        cells["close"] += [close_text[k * 4 + w]
                           for k, w in zip(v("close_kind"), v("close_initiator"))]
        cells["irtt"] += ["-" if x == UNSET else _ms(x / 1e9) for x in v("irtt_ns")]
        cells["pkts"] += [str(a + b) for a, b in zip(v("packets_client"), v("packets_server"))]
        cells["zeek"] += [CONN_STATES[z] for z in v("conn_state")]
        cells["duration"] += [_ms(d / 1e9) for d in v("duration_ns")]
        cells["bytes"] += [f"{a}/{b}" for a, b in zip(v("payload_bytes_client"),
                                                      v("payload_bytes_server"))]
        cells["history"] += [h or "-" for h in v("history")]
    kinds = Counter({CLOSE_KINDS[k]: n for k, n in codes.items()})
    columns = [
        Column("id", "id", cells["id"], right=True),
        Column("client", "client", cells["client"], endpoint=True, min_width=21),
        Column("server", "server", cells["server"], endpoint=True, min_width=21),
        Column("states", "c/s", cells["states"]),
        Column("close", "close", cells["close"]),
        Column("irtt", "iRTT", cells["irtt"], right=True),
        Column("pkts", "pkts", cells["pkts"], right=True),
        Column("zeek", "zeek", cells["zeek"]),
        Column("duration", "duration", cells["duration"], right=True),
        Column("bytes", "bytes c/s", cells["bytes"], right=True),
        Column("history", "history", cells["history"]),
    ]
    return render_lines(fit(columns, TABLE_STEPS, width)), kinds


def _close_text(kind: int, who: int) -> str:
    """``four_way:c``: the close kind and who started it; refused is always the server,
    simultaneous always both: no initiator letter."""
    name, by = CLOSE_KINDS[kind], WHO[who]
    return f"{name}:{by[0]}" if by and name not in ("refused", "simultaneous") else name


def _table_part(cap: Results, many: bool, out: TextIO, width: int | None = None) -> None:
    """id, client, server, final states (client/server), close, iRTT, packets; fitted to
    ``width`` (default: the terminal's, 80 off a terminal; analyzer.fit)."""
    width = width or table_width()
    if many:
        out.write(f"== {cap.path}\n")
    lines, kinds = table_lines(cap, width)
    out.writelines(line + "\n" for line in lines)
    out.write(textwrap.fill(_footer(cap, kinds), width, break_on_hyphens=False) + "\n")


def _footer(cap: Results, kinds: Counter[str]) -> str:
    s = cap.stats
    unmatched = s.get("filtered", 0) + s.get("filter_inapplicable", 0)  # read -f
    skipped = s["frames"] - s["tcp"] - unmatched

    def count(n: int, word: str) -> str:  # plain numbers: scripts read this line
        return plural(n, word, grouped=False)

    conns = count(len(cap.ids()), "connection") if cap.selected is None else \
        f"{len(cap.ids())} of {count(len(cap), 'connection')}"
    if kinds:  # none when a filter kept no connection: no empty "()"
        conns += f" ({', '.join(f'{n} {k}' for k, n in kinds.most_common())})"
    text = f"{conns}; {count(s['tcp'], 'TCP packet')}"
    if skipped:
        text += f", {count(skipped, 'other packet')} skipped"
    if unmatched:
        text += f", {unmatched} not matching the filter"
    if s["fragments"]:
        text += f" ({count(s['fragments'], 'IP fragment')})"
    return text


ZEEK_FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
               "service", "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig",
               "local_resp", "missed_bytes", "history", "orig_pkts", "orig_ip_bytes",
               "resp_pkts", "resp_ip_bytes", "tunnel_parents", "ip_proto")
ZEEK_TYPES = ("time", "string", "addr", "port", "addr", "port", "enum", "string", "interval",
              "count", "count", "string", "bool", "bool", "count", "string", "count", "count",
              "count", "count", "set[string]", "count")


def write_zeek(captures: list[Results], out: TextIO) -> None:
    write(captures, "zeek", out)
