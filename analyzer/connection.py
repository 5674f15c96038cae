"""One connection of a capture, for notebooks: ``capture[conn_id]``.

A :class:`Connection` is a view: it holds the capture and the id, and reads the
record, the packets and the state changes from the capture when asked.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .capture import Capture


class Connection:
    """One TCP connection: its record, packets, state changes, ladder and sequence plot."""

    def __init__(self, capture: Capture, conn_id: int) -> None:
        self.capture = capture
        self.id = conn_id

    def __repr__(self) -> str:
        rec = self.record
        return (f"<Connection {self.id} {rec['client']} -> {rec['server']} "
                f"{rec['conn_state']} {rec['close']['kind']}>")

    @property
    def record(self) -> dict[str, Any]:
        """The ``handshake read --format jsonl`` object of this connection."""
        return self.capture.record(self.id)

    @property
    def summary(self) -> pd.Series:
        """This connection's row of ``capture.connections``."""
        return self.capture.connections.loc[self.id]

    @property
    def packets(self) -> pd.DataFrame:
        """This connection's rows of ``capture.packets`` (the same columns). Reads the
        file again for this one connection unless every packet is already recorded."""
        from .columns import row_columns
        from .frames import packets_frame

        cap = self.capture
        recorded = cap.options.record
        if recorded == self.id:
            return packets_frame(cap, columns=row_columns(cap.engine, self.id))
        cached = any(key[0] == "packets" for key in cap.__dict__.get("_frames", {}))
        if recorded != -2 and not cached and os.path.isfile(cap.path):
            # One connection's rows: cheaper than the whole capture's packet table.
            one = cap.reread(self.id)
            return packets_frame(one, columns=row_columns(one.engine, self.id))
        frame = cap.packets
        return frame[frame["conn_id"] == self.id].reset_index(drop=True)

    @property
    def states(self) -> pd.DataFrame:
        """Both endpoints' state changes in order: ``endpoint, time, state, packet, how,
        input`` (see :func:`analyzer.frames.transitions_frame`)."""
        from .frames import transitions_frame

        self.capture.record(self.id)  # a clear error for an unknown id
        return transitions_frame(self.capture, [self.id]).drop(columns="conn_id")

    def ladder(self, *, ax: Axes | None = None) -> Figure:
        """The ladder (message sequence) diagram with both endpoints' states."""
        from .report import ladder_plot

        return ladder_plot(self.capture, self.id, ax=ax)

    def sequence_plot(self, *, ax: Axes | None = None, absolute: bool = False) -> Figure:
        """The time-sequence graph (relative sequence numbers unless ``absolute``)."""
        from .report import sequence_plot

        return sequence_plot(self.capture, self.id, ax=ax, absolute=absolute)

    def _repr_html_(self) -> str:
        from .notebook import connection_html

        return connection_html(self)
