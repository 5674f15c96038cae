"""Recorded packet rows as numpy columns, straight from the engine's buffers.

``Engine.rows()`` builds one Python tuple per packet (fine for ``handshake show``);
plots and DataFrames of a million packets read these columns instead
(``Engine.row_columns``, one packed array per field, no object per packet).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Column name -> numpy dtype code, in Engine.rows() tuple order (csrc/module.c).
ROW_DTYPES: Final = {
    "pkt_no": "u8", "ts_ns": "i8", "conn": "u4", "from_client": "?", "flags": "u1",
    "seq": "u4", "ack": "u4", "len": "u4", "win": "u2", "client_state": "i1",
    "server_state": "i1", "unexpected": "?", "anomalies": "u4", "dup_ack_num": "u4",
}


def row_columns(engine: Any, conn_id: int | None = None) -> dict[str, NDArray[Any]]:
    """The rows recorded by ``engine`` (``read(..., record=...)``), of one connection or
    all, as read-only numpy arrays keyed by ROW_DTYPES' names."""
    import numpy as np

    raw = engine.row_columns(-1 if conn_id is None else conn_id)
    return {name: np.frombuffer(raw[name], dtype=np.dtype(code).newbyteorder("="))
            for name, code in ROW_DTYPES.items()}
