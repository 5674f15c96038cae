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
from ..records import INPUT_NAMES, STATE_NAMES, RawConn, build_record, endpoint, secs

HOW = ("normal", "inferred", "unexpected")
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
                raw = RawConn._make(engine.conn(conn_id))
                view = self.open[conn_id] = ConnView(
                    endpoint(raw.family, raw.client_addr, raw.client_port),
                    endpoint(raw.family, raw.server_addr, raw.server_port))
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
        raw = None
        if not view.established:  # several segments may come in one batch: ask the engine
            raw = RawConn._make(engine.conn(conn_id))
            if raw.handshake_complete:
                view.established = True
                rec = build_record(raw, [])
                out.append({"event": "handshake", "time": secs(raw.ack_ns or ts_ns),
                            "id": conn_id,
                            "client": view.client, "server": view.server,
                            **{k: rec["handshake"][k] for k in
                               ("irtt", "client_rtt", "server_rtt", "simultaneous_open",
                                "fast_open", "syn_retransmits")}})
        if all(s in DONE for s in view.state) or view.reset_by is not None:
            raw = raw or RawConn._make(engine.conn(conn_id))
            rec = build_record(raw, engine.transitions(conn_id))
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
    out = []
    conn, transitions = engine.conn, engine.transitions
    for i in range(engine.conn_count()):
        rec = build_record(RawConn._make(conn(i)), transitions(i))
        out.append({"event": "final", "time": rec["end"], "id": i, "record": rec})
    return out
