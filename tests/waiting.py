"""Waiting for the event a test needs (a line printed, packets in a capture), never for a
fixed time: on a loaded machine a fixed sleep is either too short (the test fails) or
far too long. Each wait has a generous deadline and says what it waited for."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, TypeVar

import analyzer

T = TypeVar("T")
DEADLINE = 60.0  # seconds: only reached when the awaited event never happens


def wait_until(check: Callable[[], T], what: str, timeout: float = DEADLINE) -> T:
    """Poll ``check`` until it returns something true; return that."""
    end = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


class Lines:
    """Every line of a text stream (a subprocess's stdout), read by a thread, so a test can
    wait for one line and still get them all at the end."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def wait_for(self, match: Callable[[list[str]], bool], what: str,
                 timeout: float = DEADLINE) -> None:
        """Until ``match(lines so far)`` holds; fails if the stream ends or time runs out."""
        end = time.monotonic() + timeout
        with self._cond:
            while not match(self.lines):
                left = end - time.monotonic()
                if self._done or left <= 0:
                    raise AssertionError(f"{'stream ended' if self._done else 'timed out'} "
                                         f"waiting for {what}; got: {self.lines[-5:]}")
                self._cond.wait(left)

    def close(self, timeout: float = DEADLINE) -> list[str]:
        """All lines, once the stream has ended."""
        self._thread.join(timeout)
        return list(self.lines)


def _client_port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def closed_events(ports: Iterable[int]) -> Callable[[list[str]], bool]:
    """For Lines.wait_for on ``sniff --format jsonl``: a ``closed`` event for every one of
    these client ports (both endpoints CLOSED/TIME_WAIT, or reset: nothing more follows)."""
    import json

    wanted = set(ports)

    def match(lines: list[str]) -> bool:
        seen = {_client_port(ev["client"]) for ev in map(json.loads, lines)
                if ev["event"] == "closed"}
        return wanted <= seen
    return match


def ended(rec: dict[str, Any]) -> bool:
    """A connection whose last packet has been captured: reset or refused, or both
    endpoints in CLOSED/TIME_WAIT (the last ACK of the close seen)."""
    if rec["close"]["kind"] in ("reset", "refused"):
        return True
    return all(rec["states"][who] and rec["states"][who][-1][1] in ("CLOSED", "TIME_WAIT")
               for who in ("client", "server"))


def capture_has_ended(pcap: Path, ports: Iterable[int] = (), connections: int = 0
                      ) -> Callable[[], bool]:
    """For wait_until: the file being written holds the whole of every connection from
    these client ports, or of every connection when there are at least ``connections``."""
    wanted = set(ports)

    def check() -> bool:
        if not pcap.exists() or pcap.stat().st_size < 24:
            return False
        recs = {_client_port(r["client"]): r for r in analyzer.read(str(pcap)).records()}
        if connections:
            return len(recs) >= connections and all(map(ended, recs.values()))
        return wanted <= set(recs) and all(ended(recs[p]) for p in wanted)
    return check
