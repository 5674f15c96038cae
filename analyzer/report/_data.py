"""Per-packet data of one connection as numpy arrays, shared by the plots.

Rows are only recorded by the engine when asked (``read(path, record=...)``), so a
Capture read without them is read again here, for that one connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..relative import seq_bases

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ..results import Results

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
ROW_WIDTH = 12  # columns we rely on; later columns may be appended by the engine
MOD = 1 << 32


@dataclass
class Packets:
    """One connection's packets in capture order (columns of Engine.rows)."""

    pkt_no: NDArray[np.int64]
    ts_ns: NDArray[np.int64]
    from_client: NDArray[np.bool_]
    flags: NDArray[np.int64]
    seq: NDArray[np.int64]
    ack: NDArray[np.int64]
    length: NDArray[np.int64]
    win: NDArray[np.int64]
    client_state: NDArray[np.int64]
    server_state: NDArray[np.int64]
    unexpected: NDArray[np.bool_]
    anomalies: NDArray[np.int64]  # Wireshark's analysis flags (analyzer.anomalies.Anomaly)
    dup_ack_num: NDArray[np.int64]  # the n of "TCP Dup ACK #n"
    # (client, server) base of relative sequence numbers: analyzer.relative's one rule
    bases: tuple[int | None, int | None]

    def __len__(self) -> int:
        return len(self.pkt_no)


def _isns(capture: Results, conn_id: int) -> tuple[int | None, int | None]:
    row = capture.row(conn_id)
    return (None if row.client_isn < 0 else row.client_isn,
            None if row.server_isn < 0 else row.server_isn)


def _to_packets(columns: dict[str, Any], isns: tuple[int | None, int | None]) -> Packets:
    c = columns
    # lazily, element by element: only the first packet or two are usually read
    bases = seq_bases(isns[0], isns[1],
                      zip(map(bool, c["from_client"]), map(int, c["flags"]), map(int, c["seq"]),
                          map(int, c["ack"])))
    return Packets(c["pkt_no"].astype("int64"), c["ts_ns"], c["from_client"],
                   c["flags"].astype("int64"), c["seq"].astype("int64"),
                   c["ack"].astype("int64"), c["len"].astype("int64"),
                   c["win"].astype("int64"), c["client_state"].astype("int64"),
                   c["server_state"].astype("int64"), c["unexpected"],
                   c["anomalies"].astype("int64"), c["dup_ack_num"].astype("int64"), bases)


def packets_of(capture: Results, conn_id: int) -> Packets:
    """``conn_id``'s packets: from the rows the capture recorded, else by reading it again
    (with the options it was read with)."""
    from ..columns import row_columns

    capture.check_id(conn_id)  # a clear UsageError for an unknown id
    columns = row_columns(capture.engine, conn_id)
    if len(columns["pkt_no"]):
        return _to_packets(columns, _isns(capture, conn_id))
    # reread() checks that the file still holds the same connections
    again = capture.reread(conn_id)
    return _to_packets(row_columns(again.engine, conn_id), _isns(again, conn_id))


def all_packets_by_conn(capture: Results) -> dict[int, Packets]:
    """Every recorded row grouped by connection id (empty if none were recorded)."""
    import numpy as np

    from ..columns import row_columns

    columns = row_columns(capture.engine)
    conn = columns["conn"]
    if not len(conn):
        return {}
    order = np.argsort(conn, kind="stable")  # capture order within each connection
    ids, starts = np.unique(conn[order], return_index=True)
    bounds = list(starts[1:]) + [len(order)]
    batch = capture.every()  # every connection: indexed by id
    isns = [None if v < 0 else v for v in batch.values("client_isn")], \
        [None if v < 0 else v for v in batch.values("server_isn")]
    return {int(i): _to_packets({k: v[order[a:b]] for k, v in columns.items()},
                                (isns[0][int(i)], isns[1][int(i)]))
            for i, a, b in zip(ids, starts, bounds)}


#: Per-connection fields the overview needs (the results' columns, renamed here).
CONN_FIELDS = ("first_ns", "last_ns", "close_kind", "conn_state", "server_port",
               "syn_retransmits", "roles_guessed", "handshake_complete", "packets_client",
               "packets_server")
CONN_OPTIONAL = ("first_syn_ns", "syn_ns", "ack_ns", "client_isn")  # none -> -1
_COLUMN = {"first_ns": "start_ns", "last_ns": "end_ns"}


def connection_arrays(capture: Results) -> dict[str, NDArray[Any]]:
    """One numpy array per field of every connection: CONN_FIELDS, CONN_OPTIONAL (-1 for
    "none") and ``irtt`` (seconds, NaN without one): views of the engine's columns
    (analyzer.results), no Python object per connection."""
    import numpy as np

    from ..results import UNSET

    parts: dict[str, list[NDArray[Any]]] = {f: [] for f in (*CONN_FIELDS, *CONN_OPTIONAL,
                                                            "irtt")}
    # Batch by batch, keeping only these columns: the whole-capture batch of 500 k
    # connections (every column, strings and transitions) would take 400 MB more.
    for batch in capture.batches():
        for f in CONN_FIELDS:
            parts[f].append(batch.numpy(_COLUMN.get(f, f)).astype("int64"))
        for f in CONN_OPTIONAL:
            values = batch.numpy(f).astype("int64")
            parts[f].append(np.where(values == UNSET, -1, values))
        irtt = batch.numpy("irtt_ns")  # the one definition of the handshake RTT (columns.c)
        parts["irtt"].append(np.where(irtt == UNSET, np.nan, irtt / 1e9))
    return {f: np.concatenate(p) if p else np.zeros(0, dtype="float64" if f == "irtt"
                                                    else "int64")
            for f, p in parts.items()}


def unwrap(values: NDArray[np.int64], base: int) -> NDArray[np.int64]:
    """32-bit sequence numbers as a continuous offset from ``base`` (handles wrap-around
    and transfers beyond 4 GiB: each step is the signed 32-bit difference)."""
    import numpy as np

    if len(values) == 0:
        return values.copy()
    steps = np.diff(values, prepend=base) % MOD
    steps = np.where(steps >= MOD // 2, steps - MOD, steps)
    return np.cumsum(steps)


def seq_space(p: Packets) -> NDArray[np.int64]:
    """Sequence numbers each segment consumes: payload, plus one for SYN and for FIN."""
    space: NDArray[np.int64] = p.length + ((p.flags & SYN) != 0) + ((p.flags & FIN) != 0)
    return space


def flag_names(flags: int) -> str:
    names = [name for bit, name in ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"),
                                    (ACK, "ACK"), (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR"))
             if flags & bit]
    return ",".join(names) or "none"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def time_unit(span_ns: float) -> tuple[str, float]:
    """A readable unit for a time span: (label, nanoseconds per unit)."""
    if span_ns < 2e6:
        return "µs", 1e3
    if span_ns < 2e9:
        return "ms", 1e6
    return "s", 1e9


def new_figure(width: float, height: float,
               margins: tuple[float, float, float, float] | None = None) -> Any:
    """A Figure outside pyplot. Without ``margins`` matplotlib's constrained layout
    places the axes (one more text layout pass per save); with ``margins`` (left, right,
    top, bottom, in inches) they are fixed,
    which halves the time to save a figure: the report saves dozens."""
    from matplotlib.figure import Figure

    if margins is None:
        return Figure(figsize=(width, height), layout="constrained")
    left, right, top, bottom = margins
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height,
                        bottom=bottom / height)
    return fig


def stacked(fig: Any, rows: int, gap: float, **kwargs: Any) -> Any:
    """``rows`` axes above each other, ``gap`` inches apart (in a new_figure with
    margins)."""
    pars = fig.subplotpars
    height = (pars.top - pars.bottom) * fig.get_figheight()
    axes_height = (height - gap * (rows - 1)) / rows
    return fig.subplots(rows, 1, gridspec_kw={"hspace": gap / axes_height}, **kwargs)


def integer_ticks(axis: Any) -> None:
    """Counts are whole numbers: no tick at 2.5 connections (and 480,000 with commas)."""
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    axis.set_major_locator(MaxNLocator(integer=True))
    axis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))

