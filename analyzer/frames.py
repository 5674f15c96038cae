"""pandas DataFrames of a capture: connections, packets and state transitions.

The frames are views of the engine's columns (analyzer.results.ConnBatch: numpy arrays
over its buffers, the same columns every other output reads), with proper dtypes: times are ``datetime64[ns, UTC]`` taken from the integer
nanoseconds (never through floats), durations and RTTs ``timedelta64[ns]``, states,
kinds and directions categoricals with every possible value as a category, so a
``groupby`` or ``value_counts`` also lists the kinds that did not occur.

pandas is imported inside the functions: ``import analyzer`` stays cheap.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Final

from .records import CLOSE_KINDS, CONN_STATES, HOW, INPUT_NAMES, STATE_NAMES, WHO
from .results import ConnBatch, Results

if TYPE_CHECKING:
    import pandas as pd

ENDPOINTS: Final = ("client", "server")
DIRECTIONS: Final = ("client->server", "server->client")
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


def _codes(batch: ConnBatch, name: str, categories: tuple[Any, ...]) -> pd.Categorical:
    """A code column as a categorical listing every possible value (None is missing)."""
    import numpy as np
    import pandas as pd

    codes = batch.numpy(name).astype("int64")
    if categories[0] is None:  # WHO: code 0 is "nobody"
        return pd.Categorical.from_codes(np.where(codes > 0, codes - 1, -1),
                                         categories=list(categories[1:]))
    return pd.Categorical.from_codes(codes, categories=list(categories))


def _times(ns: Any) -> pd.Series:
    import pandas as pd

    return pd.Series(ns.astype("int64").view("datetime64[ns]")).dt.tz_localize("UTC")


def _deltas(ns: Any) -> Any:
    return ns.astype("int64").view("timedelta64[ns]")  # the engine's null is NaT


def _nullable(batch: ConnBatch, name: str, dtype: str) -> Any:
    """A column where -1 means null, as a pandas nullable integer array."""
    import pandas as pd

    values = batch.numpy(name).astype("int64")
    return pd.arrays.IntegerArray(values.clip(0).astype(dtype.lower()), values < 0)


def _option_flag(batch: ConnBatch, side: str, key: str) -> Any:
    import pandas as pd

    return pd.arrays.BooleanArray(batch.numpy(f"{side}_{key}").astype(bool),
                                  ~batch.numpy(f"{side}_options").astype(bool))


def connections_frame(capture: Results) -> pd.DataFrame:
    """One row per connection: the ``handshake read --format jsonl`` fields, flattened
    like ``--format csv``, plus ``client_state`` / ``server_state`` (the final states).
    ``client_states`` is the client's states in order, space separated; the times of the
    changes are in :func:`transitions_frame`. Built from the engine's columns (numpy
    views of its buffers): no Python object per connection but the strings."""
    return batch_frame(capture.batch())


def batch_frame(b: ConnBatch) -> pd.DataFrame:
    """The connections frame of one batch (:func:`connections_frame`; a streamed read
    makes one per batch)."""
    import pandas as pd

    n = b.numpy
    columns: dict[str, Any] = {
        "id": n("id").astype("int64"),
        "client": pd.array(b.values("client"), dtype="string"),
        "server": pd.array(b.values("server"), dtype="string"),
        "first_packet": n("first_packet").astype("int64"),
        "last_packet": n("last_packet").astype("int64"),
        "start": _times(n("start_ns")),
        "end": _times(n("end_ns")),
        "duration": _deltas(n("duration_ns")),
        "packets_client": n("packets_client").astype("int64"),
        "packets_server": n("packets_server").astype("int64"),
        "payload_bytes_client": n("payload_bytes_client").astype("int64"),
        "payload_bytes_server": n("payload_bytes_server").astype("int64"),
        "conn_state": _codes(b, "conn_state", CONN_STATES),
        "history": pd.array(b.values("history"), dtype="string"),
        "handshake_complete": n("handshake_complete"),
        "simultaneous_open": n("simultaneous_open"),
        "fast_open": n("fast_open"),
        "syn_retransmits": n("syn_retransmits").astype("int64"),
        "synack_retransmits": n("synack_retransmits").astype("int64"),
        "client_isn": _nullable(b, "client_isn", "UInt32"),
        "server_isn": _nullable(b, "server_isn", "UInt32"),
        "irtt": _deltas(n("irtt_ns")),
        "client_rtt": _deltas(n("client_rtt_ns")),
        "server_rtt": _deltas(n("server_rtt_ns")),
    }
    for side in ENDPOINTS:
        columns[f"{side}_mss"] = _nullable(b, f"{side}_mss", "Int64")
        columns[f"{side}_wscale"] = _nullable(b, f"{side}_wscale", "Int64")
        columns[f"{side}_sack_permitted"] = _option_flag(b, side, "sack_permitted")
        columns[f"{side}_timestamps"] = _option_flag(b, side, "timestamps")
    columns.update({
        "close_kind": _codes(b, "close_kind", CLOSE_KINDS),
        "close_initiator": _codes(b, "close_initiator", WHO),
        "close_reset_by": _codes(b, "close_reset_by", WHO),
        "close_half_close": n("close_half_close"),
        "close_time_wait": _codes(b, "close_time_wait", WHO),
        "client_states": pd.array(b.values("client_states"), dtype="string"),
        "server_states": pd.array(b.values("server_states"), dtype="string"),
        "client_state": _codes(b, "client_state", STATE_NAMES),
        "server_state": _codes(b, "server_state", STATE_NAMES),
        "roles_guessed": n("roles_guessed"),
        "unexpected": n("unexpected").astype("int64"),
    })
    frame = pd.DataFrame({name: columns[name] for name in CONNECTION_COLUMNS}, copy=False)
    return frame.set_index(pd.Index(columns["id"], name="conn_id"))


def transitions_frame(capture: Results, conn_ids: list[int] | None = None) -> pd.DataFrame:
    """Every state change of every endpoint, in order: ``conn_id, endpoint, time, state,
    packet, how, input``. ``how`` is ``normal``, ``inferred`` (the initial state of an
    endpoint whose opening was not seen, e.g. the server's LISTEN, or a change a later
    packet proves, e.g. ESTABLISHED at an ACK of a SYN-ACK not captured) or ``unexpected``: an
    input RFC 9293 does not allow in ``state``; the state did not change (these rows are
    the jsonl ``unexpected`` list)."""
    import numpy as np
    import pandas as pd

    batches = [capture.batch()] if conn_ids is None else \
        [capture.batch(i, 1) for i in conn_ids]
    parts = []
    for b in batches:
        n = b.numpy
        ids = n("id").astype("int64")
        parts.append(pd.DataFrame({
            "conn_id": np.repeat(ids, np.diff(n("trans.offsets"))),
            "endpoint": pd.Categorical.from_codes(n("trans.role").astype("int64"),
                                                  categories=list(ENDPOINTS)),
            "time": _times(n("trans.ts_ns")),
            "state": pd.Categorical.from_codes(n("trans.state").astype("int64"),
                                               categories=list(STATE_NAMES)),
            "packet": n("trans.packet").astype("int64"),
            "how": pd.Categorical.from_codes(n("trans.how").astype("int64"),
                                             categories=list(HOW)),
            "input": pd.Categorical.from_codes(n("trans.input").astype("int64"),
                                               categories=list(INPUT_NAMES)),
        }))
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts, ignore_index=True)


def flags_text(flags: int) -> str:
    """tcpdump's letters without the brackets: ``S``, ``S.``, ``P.``, ``F.``, ``R.``."""
    return "".join(ch for bit, ch in _FLAG_LETTERS if flags & bit)


@functools.cache
def _flags_text_table() -> Any:
    """tcpdump's flag text of every flags byte, indexed by it (numpy, built once)."""
    import numpy as np

    return np.array([flags_text(f) for f in range(256)], dtype=object)


def packets_frame(capture: Results, columns: dict[str, Any] | None = None) -> pd.DataFrame:
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


def _bases(capture: Results, conn: Any, client: Any, flags: Any, seq: Any, ack: Any
           ) -> tuple[Any, Any]:
    """Per row: the sender's and the receiver's base of relative sequence numbers (-1 for
    a side nothing numbers), each connection's by analyzer.relative's one rule."""
    import numpy as np

    from .relative import seq_bases

    ids = np.unique(conn)
    batch = capture.every()  # every connection: indexed by id
    # base[k]: connection ids[k]'s (client, server) bases; the ISNs where the handshake
    # gave both (seq_bases returns them as they are), -1 while unknown
    base = np.stack([batch.numpy("client_isn")[ids], batch.numpy("server_isn")[ids]], axis=1)
    missing = np.flatnonzero((base < 0).any(axis=1))
    if len(missing):  # only these need their packets: seq_bases is the one rule
        order = np.argsort(conn, kind="stable")  # capture order within each connection
        starts = np.searchsorted(conn[order], ids)
        ends = np.append(starts[1:], len(order))
        for k in missing.tolist():
            rows = order[starts[k]:ends[k]]
            known = [None if v < 0 else int(v) for v in base[k]]
            # lazily, element by element: usually only the first packet or two are read
            found = seq_bases(known[0], known[1],
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