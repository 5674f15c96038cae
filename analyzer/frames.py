"""pandas DataFrames of a capture: connections, packets and state transitions.

The frames are built from the engine's tuples (not from the JSON records), column by
column, with proper dtypes: times are ``datetime64[ns, UTC]`` taken from the integer
nanoseconds (never through floats), durations and RTTs ``timedelta64[ns]``, states,
kinds and directions categoricals with every possible value as a category, so a
``groupby`` or ``value_counts`` also lists the kinds that did not occur.

pandas is imported inside the functions: ``import analyzer`` stays cheap.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Final

from .records import CLOSE_KINDS, CONN_STATES, INPUT_NAMES, STATE_NAMES, WHO, RawConn, endpoint

if TYPE_CHECKING:
    import pandas as pd

    from .capture import Capture

ENDPOINTS: Final = ("client", "server")
DIRECTIONS: Final = ("client->server", "server->client")
HOW: Final = ("normal", "inferred", "unexpected")  # Engine.transitions' "how" codes 0, 1, 2
#: Columns 12 and 13 of a packet row when the anomaly detector is built in.
FLAG_BITS: Final = (("fin", 0x01), ("syn", 0x02), ("rst", 0x04), ("psh", 0x08), ("ack", 0x10),
                    ("urg", 0x20), ("ece", 0x40), ("cwr", 0x80))
_FLAG_LETTERS: Final = ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x10, "."),
                        (0x20, "U"), (0x40, "E"), (0x80, "W"))

#: The connections frame: the ``--format csv`` columns (the jsonl fields flattened) plus
#: each endpoint's final state.
CONNECTION_COLUMNS: Final = (
    "id", "client", "server", "first_packet", "last_packet", "start", "end", "duration",
    "packets_client", "packets_server", "payload_bytes_client", "payload_bytes_server",
    "conn_state", "history", "handshake_complete", "simultaneous_open", "fast_open",
    "syn_retransmits",
    "synack_retransmits", "client_isn", "server_isn", "irtt", "client_rtt", "server_rtt",
    "client_mss", "client_wscale", "client_sack_permitted", "client_timestamps",
    "server_mss", "server_wscale", "server_sack_permitted", "server_timestamps",
    "close_kind", "close_initiator", "close_reset_by", "close_half_close", "close_time_wait",
    "client_states", "server_states", "client_state", "server_state", "roles_guessed",
    "unexpected")


def _categorical(values: list[Any], categories: tuple[str, ...]) -> pd.Categorical:
    import pandas as pd

    return pd.Categorical(values, categories=list(categories))


def _times(ns: list[int]) -> pd.Series:
    import numpy as np
    import pandas as pd

    return pd.Series(np.asarray(ns, dtype="int64").view("datetime64[ns]")).dt.tz_localize("UTC")


def _deltas(ns: list[int | None]) -> pd.Series:
    import pandas as pd

    return pd.Series(pd.array(ns, dtype="Int64")).astype("timedelta64[ns]")


def _state(code: int) -> str | None:
    return STATE_NAMES[code] if 0 <= code < len(STATE_NAMES) else None


def _diff(later: int | None, earlier: int | None) -> int | None:
    return None if later is None or earlier is None else later - earlier


def connections_frame(capture: Capture) -> pd.DataFrame:
    """One row per connection: the ``handshake read --format jsonl`` fields, flattened
    like ``--format csv``, plus ``client_state`` / ``server_state`` (the final states).
    ``client_states`` is the client's states in order, space separated; the times of the
    changes are in :func:`transitions_frame`."""
    import pandas as pd

    ids = capture.ids()  # every connection, or those read()'s filters kept
    raws = [RawConn._make(capture.engine.conn(i)) for i in ids]
    seen = {"client": [], "server": []}  # type: dict[str, list[str]]
    unexpected: list[int] = []
    for i in ids:
        names: dict[int, list[str]] = {0: [], 1: []}
        odd = 0
        for role, state, _ts, _pkt, how, _input in capture.engine.transitions(i):
            if how == 2:
                odd += 1
            else:
                names[role].append(STATE_NAMES[state])
        seen["client"].append(" ".join(names[0]))
        seen["server"].append(" ".join(names[1]))
        unexpected.append(odd)

    def col(name: str) -> list[Any]:
        return [getattr(r, name) for r in raws]

    def option(side: str, index: int, *, flag: bool) -> pd.array:
        values = [None if o is None else o[index] for o in col(f"{side}_options")]
        if flag:
            return pd.array(values, dtype="boolean")
        return pd.array([None if v is None or v < 0 else v for v in values], dtype="Int64")

    columns: dict[str, Any] = {
        "id": pd.array(col("id"), dtype="int64"),
        "client": pd.array([endpoint(r.family, r.client_addr, r.client_port) for r in raws],
                           dtype="string"),
        "server": pd.array([endpoint(r.family, r.server_addr, r.server_port) for r in raws],
                           dtype="string"),
        "first_packet": pd.array(col("first_packet"), dtype="int64"),
        "last_packet": pd.array(col("last_packet"), dtype="int64"),
        "start": _times(col("first_ns")),
        "end": _times(col("last_ns")),
        "duration": _deltas([r.last_ns - r.first_ns for r in raws]),
        "packets_client": pd.array(col("packets_client"), dtype="int64"),
        "packets_server": pd.array(col("packets_server"), dtype="int64"),
        "payload_bytes_client": pd.array(col("payload_client"), dtype="int64"),
        "payload_bytes_server": pd.array(col("payload_server"), dtype="int64"),
        "conn_state": _categorical([CONN_STATES[c] for c in col("conn_state")], CONN_STATES),
        "history": pd.array(col("history"), dtype="string"),
        "handshake_complete": pd.array(col("handshake_complete"), dtype="bool"),
        "simultaneous_open": pd.array(col("simultaneous_open"), dtype="bool"),
        "fast_open": pd.array(col("fast_open"), dtype="bool"),
        "syn_retransmits": pd.array(col("syn_retransmits"), dtype="int64"),
        "synack_retransmits": pd.array(col("synack_retransmits"), dtype="int64"),
        "client_isn": pd.array(col("client_isn"), dtype="UInt32"),
        "server_isn": pd.array(col("server_isn"), dtype="UInt32"),
        "irtt": _deltas([_diff(r.ack_ns, r.syn_ns) for r in raws]),
        "client_rtt": _deltas([_diff(r.ack_ns, r.synack_ns) for r in raws]),
        "server_rtt": _deltas([_diff(r.synack_ns, r.syn_ns) for r in raws]),
    }
    for side in ENDPOINTS:
        columns[f"{side}_mss"] = option(side, 0, flag=False)
        columns[f"{side}_wscale"] = option(side, 1, flag=False)
        columns[f"{side}_sack_permitted"] = option(side, 2, flag=True)
        columns[f"{side}_timestamps"] = option(side, 3, flag=True)
    who = tuple(w for w in WHO if w)
    columns.update({
        "close_kind": _categorical([CLOSE_KINDS[k] for k in col("close_kind")], CLOSE_KINDS),
        "close_initiator": _categorical([WHO[w] for w in col("close_initiator")], who),
        "close_reset_by": _categorical([WHO[w] for w in col("reset_by")], who),
        "close_half_close": pd.array(col("half_close"), dtype="bool"),
        "close_time_wait": _categorical([WHO[w] for w in col("time_wait")], who),
        "client_states": pd.array(seen["client"], dtype="string"),
        "server_states": pd.array(seen["server"], dtype="string"),
        "client_state": _categorical([_state(s) for s in col("client_final")], STATE_NAMES),
        "server_state": _categorical([_state(s) for s in col("server_final")], STATE_NAMES),
        "roles_guessed": pd.array(col("roles_guessed"), dtype="bool"),
        "unexpected": pd.array(unexpected, dtype="int64"),
    })
    frame = pd.DataFrame({name: columns[name] for name in CONNECTION_COLUMNS})
    return frame.set_index(pd.Index(frame["id"].to_numpy(), name="conn_id"))


def transitions_frame(capture: Capture, conn_ids: list[int] | None = None) -> pd.DataFrame:
    """Every state change of every endpoint, in order: ``conn_id, endpoint, time, state,
    packet, how, input``. ``how`` is ``normal``, ``inferred`` (the initial state of an
    endpoint whose opening was not seen, e.g. the server's LISTEN, or a change a later
    packet proves, e.g. ESTABLISHED at an ACK of a SYN-ACK not captured) or ``unexpected``: an
    input RFC 9293 does not allow in ``state``; the state did not change (these rows are
    the jsonl ``unexpected`` list)."""
    import pandas as pd

    ids = capture.ids() if conn_ids is None else conn_ids
    conn: list[int] = []
    role: list[str] = []
    state: list[str] = []
    ts: list[int] = []
    pkt: list[int] = []
    how: list[str] = []
    seen: list[str | None] = []
    for i in ids:
        for r, s, t, p, h, inp in capture.engine.transitions(i):
            conn.append(i)
            role.append(ENDPOINTS[r])
            state.append(STATE_NAMES[s])
            ts.append(t)
            pkt.append(p)
            how.append(HOW[h])
            seen.append(INPUT_NAMES[inp] if 0 <= inp < len(INPUT_NAMES) else None)
    return pd.DataFrame({
        "conn_id": pd.array(conn, dtype="int64"),
        "endpoint": _categorical(role, ENDPOINTS),
        "time": _times(ts),
        "state": _categorical(state, STATE_NAMES),
        "packet": pd.array(pkt, dtype="int64"),
        "how": _categorical(how, HOW),
        "input": _categorical(seen, INPUT_NAMES),
    })


def flags_text(flags: int) -> str:
    """tcpdump's letters without the brackets: ``S``, ``S.``, ``P.``, ``F.``, ``R.``."""
    return "".join(ch for bit, ch in _FLAG_LETTERS if flags & bit)


@functools.cache
def _flags_text_table() -> Any:
    """tcpdump's flag text of every flags byte, indexed by it (numpy, built once)."""
    import numpy as np

    return np.array([flags_text(f) for f in range(256)], dtype=object)


def packets_frame(capture: Capture, columns: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per TCP packet (the engine's packet rows): ``packet, time, conn_id,
    from_client, direction, flags, flags_text``, one boolean per flag (``flag_syn``,
    ``flag_ack`` ...), absolute
    ``seq``/``ack``, ``rel_seq``/``rel_ack`` (relative to the sender's / receiver's ISN,
    or as Wireshark when the SYN was not captured: analyzer.relative; ``rel_ack`` is
    missing without the ACK flag), ``payload_len``, ``window`` (as sent,
    not scaled), ``client_state`` / ``server_state`` after the packet and ``unexpected``,
    then ``anomalies`` (bitmask), ``dup_ack`` and one boolean ``anomaly_<name>`` per
    :class:`analyzer.anomalies.Anomaly` flag.

    Built from ``columns`` (analyzer.columns.row_columns, numpy all the way; by default
    the capture's recorded rows)."""
    import numpy as np
    import pandas as pd

    from .columns import row_columns

    c = row_columns(capture.engine) if columns is None else columns
    if capture.selected is not None:  # only the connections read()'s filters kept
        keep = np.isin(c["conn"], np.asarray(capture.selected, dtype="int64"))
        c = {name: column[keep] for name, column in c.items()}
    conn_arr = c["conn"].astype("int64")
    client = c["from_client"].astype(bool)
    flag_arr = c["flags"].astype("uint8")
    seq_arr = c["seq"].astype("int64")
    ack_arr = c["ack"].astype("int64")
    has_ack = (flag_arr & 0x10) != 0
    frame = pd.DataFrame({
        "packet": c["pkt_no"].astype("int64"),
        "time": pd.Series(c["ts_ns"].astype("int64").view("datetime64[ns]")
                          ).dt.tz_localize("UTC"),
        "conn_id": conn_arr,
        "from_client": client,
        "direction": pd.Categorical.from_codes(np.where(client, 0, 1), categories=DIRECTIONS),
        "flags": flag_arr,
        "flags_text": pd.array(_flags_text_table()[flag_arr], dtype="string"),
    })
    for name, bit in FLAG_BITS:
        frame[f"flag_{name}"] = (flag_arr & bit) != 0
    frame["seq"] = seq_arr.astype("uint32")
    frame["ack"] = ack_arr.astype("uint32")
    own, other = _bases(capture, conn_arr, client, flag_arr, seq_arr, ack_arr)
    frame["rel_seq"] = pd.array((seq_arr - own) % 2**32, dtype="Int64")
    rel_ack = pd.array((ack_arr - other) % 2**32, dtype="Int64")
    rel_ack[~has_ack | (other < 0)] = pd.NA
    frame["rel_ack"] = rel_ack
    frame["payload_len"] = c["len"].astype("int64")
    frame["window"] = c["win"].astype("int64")
    for who in ENDPOINTS:  # -1 (not seen yet) is a missing value
        frame[f"{who}_state"] = pd.Categorical.from_codes(
            c[f"{who}_state"].astype("int64"), categories=list(STATE_NAMES))
    frame["unexpected"] = c["unexpected"].astype(bool)
    _add_anomaly_columns(frame, c["anomalies"], c["dup_ack_num"])
    return frame


def _bases(capture: Capture, conn: Any, client: Any, flags: Any, seq: Any, ack: Any
           ) -> tuple[Any, Any]:
    """Per row: the sender's and the receiver's base of relative sequence numbers (-1 for
    a side nothing numbers), each connection's by analyzer.relative's one rule."""
    import numpy as np

    from .relative import seq_bases

    order = np.argsort(conn, kind="stable")  # capture order within each connection
    ids, starts = np.unique(conn[order], return_index=True)
    ends = [*starts[1:].tolist(), len(order)]
    base = np.full((len(ids), 2), -1, dtype="int64")  # [k]: connection ids[k]'s bases
    for k, (i, a, b) in enumerate(zip(ids.tolist(), starts.tolist(), ends)):
        raw = RawConn._make(capture.engine.conn(i))
        rows = order[a:b]
        # lazily, element by element: usually only the first packet or two are read
        found = seq_bases(raw.client_isn, raw.server_isn,
                          zip(map(bool, client[rows]), map(int, flags[rows]),
                              map(int, seq[rows]), map(int, ack[rows])))
        base[k] = [-1 if v is None else v for v in found]
    row = np.searchsorted(ids, conn)
    side = np.where(client, 0, 1)
    return base[row, side], base[row, 1 - side]


def _add_anomaly_columns(frame: pd.DataFrame, anomalies: Any, dup_ack: Any) -> None:
    """``anomalies`` (bitmask), ``dup_ack`` and one boolean column per anomaly flag
    (``anomaly_retransmission`` ...), named after :class:`analyzer.anomalies.Anomaly`."""
    from .anomalies import Anomaly

    frame["anomalies"] = anomalies.astype("int64")
    frame["dup_ack"] = dup_ack.astype("int64")
    for flag in Anomaly:
        frame[f"anomaly_{str(flag.name).lower()}"] = (anomalies & int(flag)) != 0