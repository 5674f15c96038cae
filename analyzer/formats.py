"""Writers for ``handshake read``: table, jsonl, json, csv and Zeek's conn.log.

Each writes one pass over a capture's batches (:class:`Part`): a Results read into
memory, or a streamed read (analyzer.results.Stream) whose counters, warnings and error
are known only after its last batch, so whatever needs them (the json summary, the
table's footer) comes after the connections.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from .fit import Column, Step, fit, render_lines
from .records import CLOSE_KINDS, CONN_STATES, STATE_NAMES, WHO
from .results import UNSET, ConnBatch
from .words import plural

if TYPE_CHECKING:
    from .errors import CaptureError
    from .merge import MergedFiles

FORMATS = ("table", "jsonl", "json", "csv", "zeek")

SHORT_STATE = {"CLOSED": "CL", "LISTEN": "LI", "SYN_SENT": "SS", "SYN_RECEIVED": "SR",
               "ESTABLISHED": "ES", "FIN_WAIT_1": "F1", "FIN_WAIT_2": "F2",
               "CLOSE_WAIT": "CW", "CLOSING": "CG", "LAST_ACK": "LA", "TIME_WAIT": "TW"}


class Part(Protocol):
    """What the writers read of one capture (Results, or results.Stream): its batches
    (those the connection filters kept, in output order), then its figures (``stats``,
    ``warnings``, ``error``: final once the batches are exhausted)."""

    @property
    def path(self) -> str: ...
    @property
    def merged(self) -> MergedFiles | None: ...
    @property
    def stats(self) -> dict[str, int]: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def error(self) -> CaptureError | None: ...
    @property
    def filtered(self) -> bool: ...  # the connection filters chose the batches' rows

    def batches(self) -> Iterator[ConnBatch]: ...

    def __len__(self) -> int: ...  # connections in the file


def write(captures: Iterable[Part], fmt: str, out: TextIO) -> None:
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


def write_part(cap: Part, fmt: str, index: int, count: int, out: TextIO) -> None:
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


def _tag(rec: dict[str, Any], cap: Part, many: bool) -> dict[str, Any]:
    if many:
        rec["file"] = cap.path
    if cap.merged:  # several files read as one: where the first and last packets are
        rec.update(cap.merged.fields(rec["first_packet"], rec["last_packet"]))
    return rec


def _merged_jsonl(cap: Part, lines: str) -> str:
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


def write_jsonl(captures: list[Part], out: TextIO) -> None:
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


def _jsonl_lines(cap: Part, batch: ConnBatch, many: bool) -> bytes:
    """A batch's jsonl lines (rendered by the engine from the columns), with "file" for
    several captures and the file fields of a merged one."""
    lines = batch.render("jsonl", tag=cap.path if many else None)
    return _merged_jsonl(cap, lines.decode()).encode() if cap.merged else lines


def _jsonl_part(cap: Part, many: bool, out: TextIO) -> None:
    for batch in cap.batches():
        _put(out, _jsonl_lines(cap, batch, many))


def write_json(captures: list[Part], out: TextIO) -> None:
    write(captures, "json", out)


def _json_part(cap: Part, index: int, many: bool, out: TextIO) -> None:
    """``{"file", "connections": [...], "summary"}`` with one jsonl object per line (the
    same objects as --format jsonl); one level deeper in a list of several captures.
    The summary comes last: a streamed read knows its figures after its connections."""
    pad = " " if many else ""
    head = json.dumps({"file": cap.path}, indent=1)[:-2]
    out.write(("" if index == 0 else ",\n") + pad + head.replace("\n", "\n" + pad)
              + f',\n{pad} "connections": [')
    sep = f"\n{pad}  ".encode()
    first = True
    kinds: Counter[int] = Counter()
    for batch in cap.batches():
        kinds.update(batch.values("close_kind"))
        lines = _jsonl_lines(cap, batch, False)
        if lines:
            _put(out, (sep if first else b"," + sep) + lines[:-1].replace(b"\n", b"," + sep))
            first = False
    tail = json.dumps({"summary": summary(cap, kinds)}, indent=1)[2:]  # after the "{\n"
    out.write(f"\n{pad} ],\n{pad}" + tail.replace("\n", "\n" + pad))


def summary(cap: Part, kinds: Counter[int]) -> dict[str, Any]:
    """The json summary of a capture whose reported connections had these close kind
    codes (counted as they were written)."""
    doc = {"connections": sum(kinds.values()),
           "close_kinds": {CLOSE_KINDS[k]: n for k, n in sorted(kinds.items())},
           "counters": cap.stats, "warnings": cap.warnings,
           "error": str(cap.error) if cap.error else None}
    if cap.filtered:  # the connection filters chose these of the file's
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


def write_csv(captures: list[Part], out: TextIO) -> None:
    write(captures, "csv", out)


def _csv_part(cap: Part, many: bool, out: TextIO) -> None:
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


def write_table(captures: list[Part], out: TextIO, width: int | None = None) -> None:
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


def table_lines(cap: Part, width: int) -> tuple[Iterator[str], Counter[str]]:
    """The table's header and rows at ``width`` columns (made as they are iterated), and
    the close kinds counted (read from the results' columns, analyzer.results). The
    columns are fitted to every row, so the capture is walked first; meanwhile each
    batch's cells are kept as one text per column (a few bytes a cell, not a Python
    string each), and split again batch by batch as the rows are laid out."""
    codes: Counter[int] = Counter()
    longest = dict.fromkeys(_TABLE_COLUMNS, 0)
    parts: list[dict[str, str]] = []
    for batch in cap.batches():
        cells = _table_cells(batch, codes)
        for name, texts in cells.items():
            longest[name] = max(longest[name], max(map(len, texts), default=0))
        parts.append({name: "\n".join(texts) for name, texts in cells.items()})
    kinds = Counter({CLOSE_KINDS[k]: n for k, n in codes.items()})
    shown = fit(_table_columns(longest), TABLE_STEPS, width)
    return _table_rows(shown, parts), kinds


def _table_rows(shown: list[Column], parts: list[dict[str, str]]) -> Iterator[str]:
    yield from render_lines(shown)  # the header
    for part in parts:
        columns = [replace(c, longest=c.width(), cells=part[c.name].split("\n"))
                   for c in shown]
        yield from render_lines(columns)[1:]


_TABLE_COLUMNS = ("id", "client", "server", "states", "close", "irtt", "pkts", "zeek",
                  "duration", "bytes", "history")


def _table_columns(longest: dict[str, int]) -> list[Column]:
    """The table's columns, no cells but the longest of each."""
    def column(name: str, header: str, **how: Any) -> Column:
        return Column(name, header, [], longest=longest[name], **how)

    return [
        column("id", "id", right=True),
        column("client", "client", endpoint=True, min_width=21),
        column("server", "server", endpoint=True, min_width=21),
        column("states", "c/s"),
        column("close", "close"),
        column("irtt", "iRTT", right=True),
        column("pkts", "pkts", right=True),
        column("zeek", "zeek"),
        column("duration", "duration", right=True),
        column("bytes", "bytes c/s", right=True),
        column("history", "history"),
    ]


_SHORT_CODES = ["--", *(SHORT_STATE[name] for name in STATE_NAMES)]  # by code + 1
_CLOSE_TEXTS: list[str] = []  # by kind * 4 + initiator, filled on first use


def _table_cells(batch: ConnBatch, codes: Counter[int]) -> dict[str, list[str]]:
    """A batch's cells, column by column (no Python object per row but text); counts
    its close kinds into ``codes``."""
    if not _CLOSE_TEXTS:
        _CLOSE_TEXTS.extend(_close_text(kind, who) for kind in range(len(CLOSE_KINDS))
                            for who in range(len(WHO)))
    v, short, close_text = batch.values, _SHORT_CODES, _CLOSE_TEXTS
    codes.update(v("close_kind"))
    return {
        "id": list(map(str, v("id"))),
        "client": v("client"),
        "server": v("server"),
        "states": [f"{short[c + 1]}/{short[s + 1]}"
                   for c, s in zip(v("client_state"), v("server_state"))],
        "close": [close_text[k * 4 + w] for k, w in zip(v("close_kind"), v("close_initiator"))],
        "irtt": ["-" if x == UNSET else _ms(x / 1e9) for x in v("irtt_ns")],
        "pkts": [str(a + b) for a, b in zip(v("packets_client"), v("packets_server"))],
        "zeek": [CONN_STATES[z] for z in v("conn_state")],
        "duration": [_ms(d / 1e9) for d in v("duration_ns")],
        "bytes": [f"{a}/{b}" for a, b in zip(v("payload_bytes_client"),
                                             v("payload_bytes_server"))],
        "history": [h or "-" for h in v("history")],
    }


def _close_text(kind: int, who: int) -> str:
    """``four_way:c``: the close kind and who started it; refused is always the server,
    simultaneous always both: no initiator letter."""
    name, by = CLOSE_KINDS[kind], WHO[who]
    return f"{name}:{by[0]}" if by and name not in ("refused", "simultaneous") else name


def _table_part(cap: Part, many: bool, out: TextIO, width: int | None = None) -> None:
    """id, client, server, final states (client/server), close, iRTT, packets; fitted to
    ``width`` (default: the terminal's, 80 off a terminal; analyzer.fit)."""
    width = width or table_width()
    if many:
        out.write(f"== {cap.path}\n")
    lines, kinds = table_lines(cap, width)
    out.writelines(line + "\n" for line in lines)
    out.write(textwrap.fill(_footer(cap, kinds), width, break_on_hyphens=False) + "\n")


def _footer(cap: Part, kinds: Counter[str]) -> str:
    s = cap.stats
    unmatched = s.get("filtered", 0) + s.get("filter_inapplicable", 0)  # read -f
    skipped = s["frames"] - s["tcp"] - unmatched

    def count(n: int, word: str) -> str:  # plain numbers: scripts read this line
        return plural(n, word, grouped=False)

    kept = sum(kinds.values())
    conns = f"{kept} of {count(len(cap), 'connection')}" if cap.filtered else \
        count(kept, "connection")
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


def write_zeek(captures: list[Part], out: TextIO) -> None:
    write(captures, "zeek", out)
