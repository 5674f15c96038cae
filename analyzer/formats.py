"""Writers for ``handshake read``: table, jsonl, json, csv and Zeek's conn.log."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import textwrap
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any, TextIO

from .capture import Capture
from .filters import runs
from .fit import Column, Step, fit, render_lines
from .records import CONN_STATES, RawConn, endpoint

FORMATS = ("table", "jsonl", "json", "csv", "zeek")

SHORT_STATE = {"CLOSED": "CL", "LISTEN": "LI", "SYN_SENT": "SS", "SYN_RECEIVED": "SR",
               "ESTABLISHED": "ES", "FIN_WAIT_1": "F1", "FIN_WAIT_2": "F2",
               "CLOSE_WAIT": "CW", "CLOSING": "CG", "LAST_ACK": "LA", "TIME_WAIT": "TW"}


def write(captures: Iterable[Capture], fmt: str, out: TextIO) -> None:
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


def write_part(cap: Capture, fmt: str, index: int, count: int, out: TextIO) -> None:
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
        out.writelines("\t".join(zeek_row(cap, cap.raw(i))) + "\n" for i in cap.ids())
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _tag(rec: dict[str, Any], cap: Capture, many: bool) -> dict[str, Any]:
    if many:
        rec["file"] = cap.path
    if cap.merged:  # several files read as one: where the first and last packets are
        rec.update(cap.merged.fields(rec["first_packet"], rec["last_packet"]))
    return rec


def _merged_jsonl(cap: Capture, lines: str) -> str:
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


def write_jsonl(captures: list[Capture], out: TextIO) -> None:
    """One object per line. With one file the engine writes the lines itself (the same
    objects as records.build_record, tests/test_jsonl.py checks); several files add a
    "file" key to each."""
    write(captures, "jsonl", out)


def _jsonl_part(cap: Capture, many: bool, out: TextIO) -> None:
    if not many:  # the engine writes runs of consecutive ids (all, or the filters' choice)
        for first, n in runs(cap.ids()):
            for start in range(first, first + n, 4096):
                lines = cap.engine.jsonl(start, min(4096, first + n - start))
                out.write(_merged_jsonl(cap, lines) if cap.merged else lines)
        return
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    for rec in cap.records():
        out.write(dumps(_tag(rec, cap, True)))
        out.write("\n")


def write_json(captures: list[Capture], out: TextIO) -> None:
    write(captures, "json", out)


def _json_part(cap: Capture, index: int, many: bool, out: TextIO) -> None:
    doc = {"file": cap.path, "summary": summary(cap),
           "connections": [_tag(rec, cap, False) for rec in cap.records()]}
    if not many:
        json.dump(doc, out, indent=1)
        return
    # As json.dump(list, indent=1) lays out an element: one level deeper.
    text = json.dumps(doc, indent=1)
    out.write(("" if index == 0 else ",\n") + " " + text.replace("\n", "\n "))


def summary(cap: Capture) -> dict[str, Any]:
    kinds: Counter[int] = Counter()
    ids = cap.ids()
    for i in ids:
        kinds[cap.raw(i).close_kind] += 1
    from .records import CLOSE_KINDS

    doc = {"connections": len(ids), "close_kinds": {CLOSE_KINDS[k]: n for k, n in
                                                    sorted(kinds.items())},
           "counters": cap.stats, "warnings": cap.warnings,
           "error": str(cap.error) if cap.error else None}
    if cap.selected is not None:  # the connection filters chose these of the file's
        doc["connections_in_file"] = len(cap)
    return doc


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


def flat(rec: dict[str, Any]) -> dict[str, Any]:
    """One record as flat columns (CSV, DataFrames)."""
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
    # e.g. "retransmission=3 duplicate_ack=5" (Wireshark's flags, non-zero counts only)
    row["anomalies"] = " ".join(f"{name}={n}" for name, n in rec["anomalies"].items())
    return row


def write_csv(captures: list[Capture], out: TextIO) -> None:
    write(captures, "csv", out)


def _csv_part(cap: Capture, many: bool, out: TextIO) -> None:
    columns = (("file",) if many else ()) + CSV_COLUMNS
    if cap.merged:
        columns += MERGED_COLUMNS
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    for rec in cap.records():
        row = flat(rec)
        if many:
            row["file"] = cap.path
        if cap.merged:
            row.update(cap.merged.fields(rec["first_packet"], rec["last_packet"]))
        writer.writerow(row)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.2f}ms" if seconds < 10 else f"{seconds:.1f}s"


def write_table(captures: list[Capture], out: TextIO, width: int | None = None) -> None:
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


def table_lines(cap: Capture, width: int) -> tuple[list[str], Counter[str]]:
    """The table's header and rows at ``width`` columns, and the close kinds counted."""
    from .records import CLOSE_KINDS, STATE_NAMES, WHO, irtt_seconds

    kinds: Counter[str] = Counter()
    cells: dict[str, list[str]] = {k: [] for k in ("id", "client", "server", "states", "close",
                                                   "irtt", "pkts", "zeek", "duration",
                                                   "bytes", "history")}
    for i in cap.ids():
        r = RawConn._make(cap.engine.conn(i))
        kind = CLOSE_KINDS[r.close_kind]
        kinds[kind] += 1
        who = WHO[r.close_initiator]
        # refused is always the server, simultaneous always both: no initiator letter
        close = f"{kind}:{who[0]}" if who and kind not in ("refused", "simultaneous") \
            else kind
        row = {"id": str(r.id), "client": endpoint(r.family, r.client_addr, r.client_port),
               "server": endpoint(r.family, r.server_addr, r.server_port),
               "states": "/".join(SHORT_STATE[STATE_NAMES[s]] if 0 <= s < 11 else "--"
                                  for s in (r.client_final, r.server_final)),
               "close": close, "irtt": _ms(irtt_seconds(r)),
               "pkts": str(r.packets_client + r.packets_server),
               "zeek": CONN_STATES[r.conn_state],
               "duration": _ms((r.last_ns - r.first_ns) / 1e9),
               "bytes": f"{r.payload_client}/{r.payload_server}", "history": r.history or "-"}
        for key, text in row.items():
            cells[key].append(text)
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


def _table_part(cap: Capture, many: bool, out: TextIO, width: int | None = None) -> None:
    """id, client, server, final states (client/server), close, iRTT, packets; fitted to
    ``width`` (default: the terminal's, 80 off a terminal; analyzer.fit)."""
    width = width or table_width()
    if many:
        out.write(f"== {cap.path}\n")
    lines, kinds = table_lines(cap, width)
    out.writelines(line + "\n" for line in lines)
    out.write(textwrap.fill(_footer(cap, kinds), width, break_on_hyphens=False) + "\n")


def _footer(cap: Capture, kinds: Counter[str]) -> str:
    s = cap.stats
    unmatched = s.get("filtered", 0) + s.get("filter_inapplicable", 0)  # read -f
    skipped = s["frames"] - s["tcp"] - unmatched
    shown = f"{len(cap.ids())} of {len(cap)}" if cap.selected is not None else f"{len(cap)}"
    text = (f"{shown} connections ({', '.join(f'{n} {k}' for k, n in kinds.most_common())}); "
            f"{s['tcp']} TCP packets")
    if skipped:
        text += f", {skipped} other packets skipped"
    if unmatched:
        text += f", {unmatched} not matching the filter"
    if s["fragments"]:
        text += f" ({s['fragments']} IP fragments)"
    return text


def _uid(path: str, conn_id: int) -> str:
    """A stable Zeek-style uid: 'C' and 17 base62 characters."""
    digest = int.from_bytes(hashlib.blake2b(f"{path}\0{conn_id}".encode(), digest_size=12)
                            .digest(), "big")
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    chars = []
    for _ in range(17):
        digest, rem = divmod(digest, 62)
        chars.append(alphabet[rem])
    return "C" + "".join(chars)


ZEEK_FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
               "service", "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig",
               "local_resp", "missed_bytes", "history", "orig_pkts", "orig_ip_bytes",
               "resp_pkts", "resp_ip_bytes", "tunnel_parents", "ip_proto")
ZEEK_TYPES = ("time", "string", "addr", "port", "addr", "port", "enum", "string", "interval",
              "count", "count", "string", "bool", "bool", "count", "string", "count", "count",
              "count", "count", "set[string]", "count")


def zeek_row(cap: Capture, r: RawConn) -> list[str]:
    """One conn.log row, with Zeek's rules for unset fields (duration 0: no bytes)."""
    import socket

    fam = socket.AF_INET if r.family == 4 else socket.AF_INET6
    duration = (r.zeek_last_ns - r.first_ns) / 1e9
    timed = duration > 0
    return [f"{r.first_ns / 1e9:.6f}", _uid(cap.path, r.id),
            socket.inet_ntop(fam, r.client_addr), str(r.client_port),
            socket.inet_ntop(fam, r.server_addr), str(r.server_port), "tcp", "-",
            f"{duration:.6f}" if timed else "-",
            str(r.zeek_orig_bytes) if timed else "-", str(r.zeek_resp_bytes) if timed else "-",
            CONN_STATES[r.conn_state], "-", "-", "0", r.history or "-",
            str(r.zeek_orig_pkts), str(r.zeek_orig_ip_bytes), str(r.zeek_resp_pkts),
            str(r.zeek_resp_ip_bytes), "-", "6"]


def write_zeek(captures: list[Capture], out: TextIO) -> None:
    write(captures, "zeek", out)
