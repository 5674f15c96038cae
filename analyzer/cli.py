"""The ``handshake`` command. Heavy modules are imported inside the subcommands, so
``handshake --help`` stays instant."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TextIO

EXIT_BAD_INPUT = 2

# Optional modules and the extra that installs each (pyproject.toml).
OPTIONAL_MODULES = {"matplotlib": "plot", "numpy": "plot", "pandas": "notebook",
                    "pyarrow": "notebook", "scapy": "capture", "pyshark": "pyshark"}

# Subcommands that live in their own modules. Each module imports only the standard
# library at top level (so ``--help`` stays instant) and defines
# ``register(sub) -> dict[str, Callable[[argparse.Namespace], int]]``.
EXTRA_COMMAND_MODULES: tuple[str, ...] = (
    "analyzer.live.cli",
    "analyzer.report.cli",
)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not in 0..65535")
    return value


def _ports(text: str) -> tuple[int, ...]:
    try:
        return tuple(_port(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of ports"
                                         ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handshake",
        description="Rebuild every TCP connection in a capture: handshake, close, and both "
                    "endpoints' RFC 9293 states.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rd = sub.add_parser("read", help="list every TCP connection in capture files",
                        description="List every TCP connection in pcap/pcapng files "
                                    "(optionally .gz).")
    rd.add_argument("files", nargs="+", metavar="FILE")
    rd.add_argument("--port", type=_port, help="only segments to or from this TCP port")
    rd.add_argument("--format", default="table",
                    choices=("table", "jsonl", "json", "csv", "zeek"),
                    help="output format (default: table)")
    rd.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    rd.add_argument("--verify-checksums", action="store_true",
                    help="ignore segments with a bad TCP checksum, as Zeek does without -C")
    rd.add_argument("--zeek-timers", action="store_true",
                    help="split connections where Zeek would (its timers: 5 s attempt, "
                         "close and reset delays, 5 min idle; a repeated SYN after a close)")
    rd.add_argument("--zeek-likely-server-ports", type=_ports, metavar="PORTS",
                    help="Zeek's likely_server_ports (comma-separated, may be empty): decide "
                         "who is the server of a connection whose SYN was not seen exactly "
                         "as that Zeek would (default: a SYN-ACK sender is the server)")
    rd.add_argument("--engine", default="native", choices=("native", "pyshark"),
                    help="packet decoder: the compiled one (default), or tshark's through "
                         "pyshark for tunnels and other encapsulations (slower)")

    sh = sub.add_parser("show", help="one connection packet by packet with both states",
                        description="Show one connection packet by packet, like tcpdump, "
                                    "with both endpoints' state after each packet.")
    sh.add_argument("file", metavar="FILE")
    sh.add_argument("conn_id", type=int, metavar="CONN_ID")
    sh.add_argument("--port", type=_port, help="the same filter as given to read")
    sh.add_argument("--verify-checksums", action="store_true")
    parser.set_defaults(handlers=_extra_commands(sub))
    return parser


Handler = Callable[[argparse.Namespace], int]


def _extra_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]
                    ) -> dict[str, Handler]:
    import importlib

    handlers: dict[str, Handler] = {}
    for name in EXTRA_COMMAND_MODULES:
        handlers.update(importlib.import_module(name).register(sub))
    return handlers


def _open_out(path: str | None) -> TextIO:
    from .errors import UsageError

    if path is None or path == "-":
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror or exc}") from None


def cmd_read(args: argparse.Namespace) -> int:
    from .capture import Capture, TerminalProgress, read
    from .formats import write
    from .source import is_tty

    captures: list[Capture] = []
    status = 0
    for path in args.files:
        bar = TerminalProgress(path) if is_tty(sys.stderr) else None
        try:
            cap = read(path, port=args.port, verify_checksums=args.verify_checksums,
                       zeek_timers=args.zeek_timers, progress=bar, engine=args.engine,
                       likely_server_ports=args.zeek_likely_server_ports)
        finally:
            if bar:
                bar.close()
        captures.append(cap)
    out = _open_out(args.output)
    try:
        write(captures, args.format, out)
    finally:
        if out is not sys.stdout:
            out.close()
    for cap in captures:
        for warning in cap.warnings:
            print(f"handshake: warning: {warning}", file=sys.stderr)
        if cap.error:
            print(f"handshake: error: {cap.error}", file=sys.stderr)
            status = EXIT_BAD_INPUT
    return status


def cmd_show(args: argparse.Namespace) -> int:
    from .show import show

    show(args.file, args.conn_id, sys.stdout, port=args.port,
         verify_checksums=args.verify_checksums)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .errors import HandshakeError

    args = build_parser().parse_args(argv)
    try:
        handlers = {"read": cmd_read, "show": cmd_show, **args.handlers}
        return int(handlers[args.command](args))
    except HandshakeError as exc:
        print(f"handshake: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        extra = OPTIONAL_MODULES.get(missing)
        if extra is None:
            raise
        print(f"handshake: error: {args.command} needs {missing}: "
              f"pip install 'handshake-analyzer[{extra}]'", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `handshake read big.pcap | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
