"""Events of a live capture, derived from the engine's state transitions.

The engine is the only tracker; this module only turns ``Engine.drain_transitions()``
into small dicts, one JSON object each in ``handshake sniff --format jsonl``:

* ``state``: one endpoint changed state (``from`` -> ``to``), or met an input RFC 9293
  does not allow in its state (``how: "unexpected"``, the state is unchanged);
* ``handshake``: the three-way handshake (or a simultaneous open) completed;
* ``closed``: both endpoints are CLOSED or TIME_WAIT, or one was reset. ``ended`` says
  how, from the transitions seen so far, and ``kind`` is the close kind. ``record`` is
  the connection's record at that moment (close and conn_state as of now: packets that
  come later, such as a retransmitted FIN, can still change them);
* ``final``: at the end of the capture, every connection's finished record, exactly as
  ``handshake read --format jsonl`` writes it for the saved file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..fsm import Input, TcpState
from ..records import HOW, INPUT_NAMES, STATE_NAMES, secs
from ..results import UNSET, engine_batch

ROLE = ("client", "server")
DONE = (TcpState.CLOSED, TcpState.TIME_WAIT)


@dataclass
class ConnView:
    """What the event stream remembers of one connection that has not closed yet."""

    client: str
    server: str
    state: list[int] = field(default_factory=lambda: [-1, -1])
    fin_first: int | None = None
    reset_by: int | None = None
    established: bool = False
    crossed_fins: bool = False  # an endpoint went through CLOSING: a simultaneous close


class EventDeriver:
    """Turns drained transitions into events; remembers only connections still open."""

    def __init__(self) -> None:
        self.open: dict[int, ConnView] = {}
        self.closed = 0

    def derive(self, engine: Any, transitions: list[tuple[int, ...]]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        touched: dict[int, int] = {}  # conn id -> ts of its last transition in this batch
        for conn_id, role, state, ts_ns, pkt, how, seen in transitions:
            view = self.open.get(conn_id)
            if view is None:
                row = engine_batch(engine, conn_id, 1).row(0)
                view = self.open[conn_id] = ConnView(row.client, row.server)
            before = view.state[role]
            event = {"event": "state", "time": secs(ts_ns), "id": conn_id, "client": view.client,
                     "server": view.server, "endpoint": ROLE[role],
                     "from": None if before < 0 else STATE_NAMES[before],
                     "to": STATE_NAMES[state], "packet": pkt, "how": HOW[how],
                     "input": None if seen < 0 else INPUT_NAMES[seen]}
            events.append(event)
            if how != 2:
                view.state[role] = state
            if view.reset_by is None and seen in (Input.SEND_RST, Input.RECV_RST):
                # A RST sent from CLOSED changes no state: its receiver's change says who.
                view.reset_by = role if seen == Input.SEND_RST else 1 - role
            if seen == Input.SEND_FIN and view.fin_first is None:
                view.fin_first = role
            if state == TcpState.CLOSING and how != 2:
                view.crossed_fins = True
            touched[conn_id] = ts_ns
        for conn_id, ts_ns in touched.items():
            events += self._milestones(engine, conn_id, ts_ns)
        return events

    def _milestones(self, engine: Any, conn_id: int, ts_ns: int) -> list[dict[str, Any]]:
        view = self.open[conn_id]
        out: list[dict[str, Any]] = []
        batch = None
        if not view.established:  # several segments may come in one batch: ask the engine
            batch = engine_batch(engine, conn_id, 1)
            row = batch.row(0)
            if row.handshake_complete:
                view.established = True
                rec = next(batch.records())
                out.append({"event": "handshake",
                            "time": secs(ts_ns if row.ack_ns == UNSET else row.ack_ns),
                            "id": conn_id,
                            "client": view.client, "server": view.server,
                            **{k: rec["handshake"][k] for k in
                               ("irtt", "client_rtt", "server_rtt", "simultaneous_open",
                                "fast_open", "syn_retransmits")}})
        if all(s in DONE for s in view.state) or view.reset_by is not None:
            rec = next((batch or engine_batch(engine, conn_id, 1)).records())
            out.append({"event": "closed", "time": secs(ts_ns), "id": conn_id,
                        "client": view.client, "server": view.server, "ended": ended(view),
                        "kind": rec["close"]["kind"], "record": rec})
            del self.open[conn_id]
            self.closed += 1
        return out


def ended(view: ConnView) -> str:
    """How a connection ended, in a few words, from the transitions seen."""
    if view.reset_by is not None:
        if not view.established and view.reset_by == 1:
            return "refused"
        return f"reset by {ROLE[view.reset_by]}"
    if view.fin_first is None or view.crossed_fins:
        return "closed by both"
    return f"closed by {ROLE[view.fin_first]}"


def final_events(engine: Any) -> list[dict[str, Any]]:
    """After ``engine.finish()``: every connection's record, as handshake read writes it."""
    return [{"event": "final", "time": rec["end"], "id": rec["id"], "record": rec}
            for rec in engine_batch(engine).records()]
