"""``handshake sniff`` and ``handshake demo``. Only the standard library is imported at
the top: the capture machinery loads when a command runs."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

EXIT_CAPTURE_ENDED = 1  # the interface went down (or the stream broke): file kept

Handler = Callable[[argparse.Namespace], int]


ENGINES = ("default", "tcpdump", "dumpcap", "scapy", "pyshark")


def register(sub: Any) -> dict[str, Handler]:
    from ..argtypes import count, non_negative_seconds, port, seconds
    from ..cli import example

    sn = sub.add_parser(
        "sniff", help="capture live and watch connections change state",
        description="Capture TCP live (like tcpdump -i any tcp port N) and show every "
                    "connection's handshake, both endpoints' RFC 9293 states and its close "
                    "as packets arrive. Ctrl-C ends it; -w keeps exactly the packets seen.",
        **example("sudo handshake sniff -i lo --port 9502 -w out.pcap"))
    sn.add_argument("-i", "--interface", default="any", metavar="IFACE",
                    help="interface name or 'any' (default: any)")
    which = sn.add_mutually_exclusive_group()
    which.add_argument("--port", type=port, help="only TCP port N (filter 'tcp port N')")
    which.add_argument("-f", "--filter", metavar="BPF", help="capture filter (default: tcp)")
    sn.add_argument("-w", "--write", metavar="OUT.pcap",
                    help="save exactly the packets seen, as a pcap file")
    sn.add_argument("-c", "--count", type=count, help="stop after this many packets")
    sn.add_argument("--duration", type=seconds, metavar="S", help="stop after S seconds")
    sn.add_argument("--format", choices=("live", "jsonl"),
                    help="live: table and log (default on a terminal); jsonl: one event per "
                         "line (default otherwise)")
    sn.add_argument("--engine", choices=ENGINES, default="default",
                    help="default: dumpcap (tcpdump when dumpcap is missing) streaming its pcap "
                         "to the engine, measured lossless at 110 k packets/s; scapy and "
                         "pyshark are slower and lose packets under load (pyshark: 1-3 s to "
                         "start, each packet handed over when the next arrives, on a stop "
                         "what tshark has not dissected within about 1 s is dropped)")
    sn.add_argument("--linger", type=non_negative_seconds, default=5.0, metavar="S",
                    help="seconds a closed connection stays in the table (default 5)")

    dm = sub.add_parser(
        "demo", help="echo server and client sessions on 127.0.0.1:9502, sniffed live",
        description="Start an echo server on 127.0.0.1:9502, play a few sessions (normal "
                    "close, server-first close, half-close, RST, refused, listen backlog "
                    "overflow), sniff them live and save the capture.",
        **example("sudo handshake demo -w demo.pcap", "handshake demo --replay    "
                  "# no capture rights needed"))
    dm.add_argument("-w", "--write", metavar="OUT.pcap",
                    help="where to save the capture (default: a new file in the temp dir)")
    dm.add_argument("--format", choices=("live", "jsonl"))
    dm.add_argument("--replay", action="store_true",
                    help="do not capture: replay the bundled capture through the live view "
                         "(what the demo offers without capture privileges)")
    return {"sniff": cmd_sniff, "demo": cmd_demo}


def _format(args: argparse.Namespace) -> str:
    return str(args.format or ("live" if sys.stdout.isatty() else "jsonl"))


@contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT end the capture cleanly (the file stays valid), once."""
    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _watch(session: Any, fmt: str, linger: float = 5.0) -> int:
    from .view import print_summary, run_view

    with _stop_on_signals(session.stop):
        try:
            run_view(session, sys.stdout, fmt, linger)
        except BrokenPipeError:  # `handshake sniff | head`: end the capture, keep the file
            session.stop()
            session.wait()
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more to print
            print_summary(session)
            return 0
    print_summary(session)
    if session.error:
        print(f"handshake: capture ended: {session.error}", file=sys.stderr)
        return EXIT_CAPTURE_ENDED
    return 0


def cmd_sniff(args: argparse.Namespace) -> int:
    from .session import LiveSession

    session = LiveSession(args.interface, port=args.port, bpf=args.filter, write=args.write,
                          count=args.count, duration=args.duration, engine=args.engine)
    # Signals stop the session from here on: a Ctrl-C just after "sniffing" (or while
    # the engine starts) still ends with the summary and a valid -w file.
    with _stop_on_signals(session.stop):
        session.start()
        print(f"handshake: sniffing {session.iface} [{session.bpf}] via "
              f"{session.stats()['engine']}; Ctrl-C stops", file=sys.stderr, flush=True)
        return _watch(session, _format(args), args.linger)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import BUNDLED_NAME, HOST, PORT, run_sessions
    from .errors import PrivilegeError
    from .session import LiveSession

    fmt = _format(args)
    if args.replay:
        return _replay(fmt)
    import tempfile  # here, not at the top: it costs --help 10-30 ms (random, hashlib)

    path = args.write or os.path.join(
        tempfile.gettempdir(), f"handshake-demo-{time.strftime('%Y%m%d-%H%M%S')}.pcap")
    session = LiveSession("lo", port=PORT, write=path)
    try:
        session.start()
    except PrivilegeError as exc:
        print(f"handshake: {exc}", file=sys.stderr)
        if sys.stdin.isatty() and sys.stdout.isatty():
            answer = input(f"Replay the bundled capture {BUNDLED_NAME} through the live "
                           "view instead? [Y/n] ").strip().lower()
            if answer in ("", "y", "yes"):
                return _replay(fmt)
        else:
            print("handshake: or see the live view on the bundled capture: "
                  "handshake demo --replay", file=sys.stderr)
        return 2
    def say(text: str) -> None:
        if fmt != "jsonl":
            print(f"demo: {text}", file=sys.stderr)

    say(f"sniffing {HOST}:{PORT} on lo; echo server and client sessions follow")

    def play() -> None:
        try:
            run_sessions(say)
        finally:
            time.sleep(0.5)  # the last packets reach the capture
            session.stop()

    threading.Thread(target=play, daemon=True).start()
    status = _watch(session, fmt)
    print(f"handshake: demo capture saved to {path}; read it with: handshake read {path}",
          file=sys.stderr)
    return status


def _replay(fmt: str) -> int:
    from .demo import bundled_path
    from .session import LiveSession

    with bundled_path() as path:  # package data: there after any install
        print(f"handshake: replaying the bundled capture {path.name} through the live view",
              file=sys.stderr)
        session = LiveSession("lo", replay=str(path))
        session.start()
        return _watch(session, fmt)
