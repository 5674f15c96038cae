"""The ``handshake`` command. Heavy modules are imported inside the subcommands, so
``handshake --help`` stays instant."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TextIO, TypedDict

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


class Example(TypedDict):
    epilog: str
    formatter_class: type[argparse.HelpFormatter]


def example(*lines: str) -> Example:
    """Parser keywords for a subcommand's help: its examples as an epilog, shown as
    written (argparse would rewrap them)."""
    text = "example" + ("s" if len(lines) > 1 else "") + ":\n" + "\n".join(
        f"  {line}" for line in lines)
    return Example(epilog=text, formatter_class=argparse.RawDescriptionHelpFormatter)


FILE_HELP = ("a pcap or pcapng capture (tcpdump -w, Wireshark, dumpcap), optionally "
             "gzip-compressed")
CONN_ID_HELP = "the connection's id: the first column of 'handshake read FILE' (0, 1, ...)"


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .argtypes import integer, port, ports

    parser = argparse.ArgumentParser(
        prog="handshake",
        description="Rebuild every TCP connection in a capture: handshake, close, and both "
                    "endpoints' RFC 9293 states.",
        epilog="'handshake COMMAND --help' lists a command's options, with an example.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rd = sub.add_parser("read", help="list every TCP connection in capture files",
                        description="List every TCP connection in pcap/pcapng files "
                                    "(optionally .gz).",
                        **example("handshake read captures/echo-lo.pcap --port 9502 "
                                  "--format jsonl"))
    rd.add_argument("files", nargs="+", metavar="FILE", help=FILE_HELP + "; several are "
                    "read one after the other")
    rd.add_argument("--port", type=port, help="only segments to or from this TCP port")
    rd.add_argument("--format", default="table",
                    choices=("table", "jsonl", "json", "csv", "zeek"),
                    help="output format (default: table)")
    rd.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    rd.add_argument("--verify-checksums", action="store_true",
                    help="ignore segments with a bad TCP checksum, as Zeek does without -C")
    rd.add_argument("--zeek-timers", action="store_true",
                    help="split connections where Zeek would (its timers: 5 s attempt, "
                         "close and reset delays, 5 min idle; a repeated SYN after a close)")
    rd.add_argument("--zeek-likely-server-ports", type=ports, metavar="PORTS",
                    help="Zeek's likely_server_ports (comma-separated, may be empty): decide "
                         "who is the server of a connection whose SYN was not seen exactly "
                         "as that Zeek would (default: a SYN-ACK sender is the server)")
    rd.add_argument("--engine", default="native", choices=("native", "pyshark"),
                    help="packet decoder: the compiled one (default), or tshark's through "
                         "pyshark for tunnels and other encapsulations (slower)")

    sh = sub.add_parser("show", help="one connection packet by packet with both states",
                        description="Show one connection packet by packet, like tcpdump, "
                                    "with both endpoints' state after each packet.",
                        **example("handshake show captures/echo-lo.pcap 0"))
    sh.add_argument("file", metavar="FILE", help=FILE_HELP)
    sh.add_argument("conn_id", type=integer, metavar="CONN_ID", help=CONN_ID_HELP)
    sh.add_argument("--port", type=port, help="the same filter as given to read")
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
    from .errors import CaptureError
    from .formats import write
    from .source import is_tty

    # In file order: a Capture, or the error that kept a file from being read at all (a
    # missing file): the other files are still reported, as after a corrupt one.
    results: list[Capture | CaptureError] = []
    for path in args.files:
        bar = TerminalProgress(path) if is_tty(sys.stderr) else None
        try:
            results.append(read(path, port=args.port, verify_checksums=args.verify_checksums,
                                zeek_timers=args.zeek_timers, progress=bar,
                                engine=args.engine,
                                likely_server_ports=args.zeek_likely_server_ports))
        except CaptureError as exc:
            results.append(exc)
        finally:
            if bar:
                bar.close()
    captures = [r for r in results if isinstance(r, Capture)]
    if captures:
        out = _open_out(args.output)
        try:
            write(captures, args.format, out)
        finally:
            if out is not sys.stdout:
                out.close()
    status = 0
    for result in results:
        if isinstance(result, CaptureError):
            print(f"handshake: error: {result}", file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        for warning in result.warnings:
            print(f"handshake: warning: {warning}", file=sys.stderr)
        if result.error:
            print(f"handshake: error: {result.error}", file=sys.stderr)
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
