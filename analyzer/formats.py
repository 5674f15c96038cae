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
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, TextIO

from .fit import Column, Step, elide, elide_endpoint, fit, render_lines
from .fit import table_width as laid_out_width
from .records import CLOSE_KINDS, CONN_STATES, STATE_NAMES, WHO
from .results import BATCH, UNSET, ConnBatch
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


#: Rows the table is fitted on before it writes any (TableWriter): one engine batch
#: (results.BATCH), so every row of a capture of up to 2048 connections is fitted as a
#: whole, as before streaming, and a longer capture's layout sees enough rows to know its
#: endpoints (IPv4, IPv6), close kinds and number widths; it is a few hundred KB of text
#: at most, and many screens.
TABLE_BLOCK: Final = BATCH

#: The table's columns: name, header, right-aligned (a number: never cut), an endpoint
#: (elided keeping its port), and the width it keeps unless elided (any IPv4 endpoint).
_TABLE_COLUMNS: Final = (
    ("id", "id", True, False, 0), ("client", "client", False, True, 21),
    ("server", "server", False, True, 21), ("states", "c/s", False, False, 0),
    ("close", "close", False, False, 0), ("irtt", "iRTT", True, False, 0),
    ("pkts", "pkts", True, False, 0), ("zeek", "zeek", False, False, 0),
    ("duration", "duration", True, False, 0), ("bytes", "bytes c/s", True, False, 0),
    ("history", "history", False, False, 0))
_TABLE_NAMES: Final = tuple(spec[0] for spec in _TABLE_COLUMNS)
_WIDEST_IPV4: Final = len("255.255.255.255:65535")  # the room an endpoint column keeps
_SPARE_DIGITS: Final = 3  # a number column's room beyond its block's widest, width allowing


def _table_columns(cells: Mapping[str, list[str]], longest: Mapping[str, int] | None = None
                   ) -> list[Column]:
    """The table's columns with these cells, or with none but the longest of each."""
    return [Column(name, header, cells.get(name, []), right=right, endpoint=endpoint,
                   min_width=min_width, longest=longest[name] if longest else 0)
            for name, header, right, endpoint, min_width in _TABLE_COLUMNS]


def _close_text(kind: int, who: int) -> str:
    """``four_way:c``: the close kind and who started it; refused is always the server,
    simultaneous always both: no initiator letter."""
    name, by = CLOSE_KINDS[kind], WHO[who]
    return f"{name}:{by[0]}" if by and name not in ("refused", "simultaneous") else name


_SHORT: Final = ["--", *(SHORT_STATE[name] for name in STATE_NAMES)]  # by state code + 1
_CLOSE_TEXT: Final = [_close_text(kind, who) for kind in range(len(CLOSE_KINDS))
                      for who in range(len(WHO))]  # by kind * 4 + initiator


def _cells(batch: ConnBatch, name: str) -> list[str]:
    """One table column's text for a batch's rows, read column by column from the
    results (analyzer.results): no Python object per row but the text."""
    v = batch.values
    if name == "id":
        return list(map(str, v("id")))
    if name in ("client", "server"):
        return list(v(name))
    if name == "states":
        return [f"{_SHORT[c + 1]}/{_SHORT[s + 1]}"
                for c, s in zip(v("client_state"), v("server_state"))]
    if name == "close":
        return [_CLOSE_TEXT[k * 4 + w] for k, w in zip(v("close_kind"), v("close_initiator"))]
    if name == "irtt":
        return ["-" if x == UNSET else _ms(x / 1e9) for x in v("irtt_ns")]
    if name == "pkts":
        return [str(a + b) for a, b in zip(v("packets_client"), v("packets_server"))]
    if name == "zeek":
        return [CONN_STATES[z] for z in v("conn_state")]
    if name == "duration":
        return [_ms(d / 1e9) for d in v("duration_ns")]
    if name == "bytes":
        return [f"{a}/{b}" for a, b in zip(v("payload_bytes_client"),
                                          v("payload_bytes_server"))]
    if name == "history":
        return [h or "-" for h in v("history")]
    raise ValueError(f"no table column {name!r}")


class _BatchCells(dict[str, list[str]]):
    """A batch's table cells, each column made when it is first asked for (the columns
    a layout does not show are never made)."""

    def __init__(self, batch: ConnBatch) -> None:
        super().__init__()
        self.batch = batch

    def __missing__(self, name: str) -> list[str]:
        got = self[name] = _cells(self.batch, name)
        return got


class TableWriter:
    """The ``read`` table of one capture, written as its batches come in memory bounded
    by one block of rows (TABLE_BLOCK), whatever the capture's length.

    A capture of at most one block is fitted to all its rows at its end (analyzer.fit).
    A longer one is fitted on its first block and every row is written in that layout
    as it comes: a text cell wider than its column is elided as fit elides (an endpoint
    keeps its port and the end of its address); the endpoint columns keep room for any
    IPv4 endpoint, each number column for up to _SPARE_DIGITS digits more than its
    block's widest where the width allows (a digit at a time, each column in turn). A
    number is never cut: one wider than its column has the table fitted again with room
    for it and the header written again above its row. ``held`` is the number of rows
    kept from one batch to the next: at most a block, none once past it."""

    def __init__(self, width: int, block: int = TABLE_BLOCK) -> None:
        self.width = width
        self.block = block
        self.codes: Counter[int] = Counter()  # close kinds of the rows (the footer)
        self.held = 0
        self.layouts = 0  # times fitted to a block (more than once: a number needed room)
        self._first: dict[str, list[str]] = {name: [] for name in _TABLE_NAMES}
        self._widest: dict[str, int] = {}  # per column, the cell length it makes room for
        self._shown: list[Column] = []
        self._widths: list[int] = []

    def add(self, batch: ConnBatch) -> list[str]:
        """The lines ready once ``batch`` is added (none while the first block fills)."""
        self.codes.update(batch.values("close_kind"))
        if self.layouts:
            return self._rows(_BatchCells(batch), batch.n)
        for name in _TABLE_NAMES:
            self._first[name] += _cells(batch, name)
        self.held += batch.n
        if self.held <= self.block:
            return []
        # A row beyond the block: the layout is the first block's, then rows go by.
        rows, first, self._first, self.held = self.held, self._first, {}, 0
        head = {name: cells[:self.block] for name, cells in first.items()}
        rest = {name: cells[self.block:] for name, cells in first.items()}
        self._widest = {name: max(map(len, cells)) for name, cells in head.items()}
        self._fit()
        return [self._header(), *self._rows(head, self.block),
                *self._rows(rest, rows - self.block)]

    def end(self) -> list[str]:
        """The lines left: a table of at most one block, fitted to all its rows."""
        if self.layouts:
            return []
        columns, self._first, self.held = _table_columns(self._first), {}, 0
        return render_lines(fit(columns, TABLE_STEPS, self.width))

    def kinds(self) -> Counter[str]:
        return Counter({CLOSE_KINDS[k]: n for k, n in self.codes.items()})

    def _fit(self) -> None:
        """The layout for the rows from here on, fitted to the widest cells so far."""
        longest = {name: max(self._widest[name], _WIDEST_IPV4 if endpoint else 0)
                   for name, _, _, endpoint, _ in _TABLE_COLUMNS}
        shown = fit(_table_columns({}, longest), TABLE_STEPS, self.width)
        numbers = [c for c in shown if c.right]
        for digits in range(1, _SPARE_DIGITS + 1):  # a digit at a time, each in turn
            for column in numbers:
                grow = self._widest[column.name] + digits - column.width()
                if grow > 0 and laid_out_width(shown) + grow <= self.width:
                    column.min_width = column.width() + grow
        self._shown, self._widths = shown, [c.width() for c in shown]
        self.layouts += 1

    def _header(self) -> str:
        return " ".join(c.header.rjust(w) if c.right else c.header.ljust(w)
                        for c, w in zip(self._shown, self._widths)).rstrip()

    def _rows(self, cells: dict[str, list[str]], n: int) -> list[str]:
        """Rows in the layout; at a number wider than its column, the table is fitted
        again (the header again) and the rest goes in the new layout."""
        out: list[str] = []
        start = 0
        while start < n:
            stop = n
            for column, w in zip(self._shown, self._widths):
                col = cells[column.name]
                if column.right and max(map(len, col[start:stop]), default=0) > w:
                    stop = next(i for i in range(start, stop) if len(col[i]) > w)
            out += self._render(cells, start, stop)
            if stop < n:
                for column in self._shown:
                    if column.right:
                        self._widest[column.name] = max(self._widest[column.name],
                                                        len(cells[column.name][stop]))
                self._fit()
                out.append(self._header())
            start = stop
        return out

    def _render(self, cells: dict[str, list[str]], start: int, stop: int) -> list[str]:
        parts = []
        for column, w in zip(self._shown, self._widths):
            col = cells[column.name][start:stop]
            if column.right:
                parts.append([c.rjust(w) for c in col])
                continue
            if max(map(len, col), default=0) > w:  # wider than the block's: elided
                cut = elide_endpoint if column.endpoint else elide
                col = [cut(c, w) for c in col]
            parts.append([c.ljust(w) for c in col])
        return [" ".join(row).rstrip() for row in zip(*parts)]


def _table_part(cap: Part, many: bool, out: TextIO, width: int | None = None) -> None:
    """id, client, server, final states (client/server), close, iRTT, packets; fitted to
    ``width`` (default: the terminal's, 80 off a terminal; analyzer.fit) on the first
    block of rows, written as the batches come (TableWriter)."""
    width = width or table_width()
    if many:
        out.write(f"== {cap.path}\n")
    table = TableWriter(width)
    for batch in cap.batches():
        out.writelines(line + "\n" for line in table.add(batch))
    out.writelines(line + "\n" for line in table.end())
    out.write(textwrap.fill(_footer(cap, table.kinds()), width, break_on_hyphens=False) + "\n")


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
