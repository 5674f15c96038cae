"""The ``handshake`` command. Heavy modules are imported inside the subcommands, so
``handshake --help`` stays instant."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO, TypedDict

if TYPE_CHECKING:
    from .errors import CaptureError
    from .parallel import Options, Part
    from .progress import Bar

EXIT_BAD_INPUT = 2

# Optional modules and the extra that installs each (pyproject.toml).
OPTIONAL_MODULES = {"matplotlib": "plot", "numpy": "plot", "pandas": "notebook",
                    "pyarrow": "notebook", "scapy": "capture", "pyshark": "pyshark",
                    "dask": "dask", "distributed": "dask"}

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


class _ExampleFormatter(argparse.HelpFormatter):
    """argparse's help, except the examples epilog: shown as written, not rewrapped."""

    def _format_text(self, text: str) -> str:
        if text.startswith("example"):
            return text + "\n\n"
        return super()._format_text(text)


def _sample() -> str:
    """How an example names the sample capture so that it runs as written from the
    current directory: as the README does in the source tree, else the installed package
    data (the same bytes: captures/ is not installed)."""
    from pathlib import Path

    from .sample import IN_TREE, installed

    return IN_TREE if Path(IN_TREE).is_file() else shlex.quote(str(installed()))


def example(*lines: str) -> Example:
    """Parser keywords for a subcommand's help: its examples as an epilog."""
    from .sample import IN_TREE

    if any(IN_TREE in line for line in lines):
        sample = _sample()
        lines = tuple(line.replace(IN_TREE, sample) for line in lines)
    text = "example" + ("s" if len(lines) > 1 else "") + ":\n" + "\n".join(
        f"  {line}" for line in lines)
    return Example(epilog=text, formatter_class=_ExampleFormatter)


FILE_HELP = ("a pcap or pcapng capture (tcpdump -w, Wireshark, dumpcap), optionally "
             "gzip-compressed")
CONN_ID_HELP = "the connection's id: the first column of 'handshake read FILE' (0, 1, ...)"


def _jobs(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"-j {value}: at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .argtypes import count, integer, port, ports, seconds

    parser = argparse.ArgumentParser(
        prog="handshake",
        description="Rebuild every TCP connection in a capture: handshake, close, and both "
                    "endpoints' RFC 9293 states.",
        epilog="'handshake COMMAND --help' lists a command's options, with an example.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rd = sub.add_parser("read", help="list every TCP connection in capture files",
                        description="List every TCP connection in pcap/pcapng files "
                                    "(optionally .gz). Files are streamed: a connection "
                                    "is written out once it is over (see --idle-timeout, "
                                    "--order), so memory does not grow with the file.",
                        **example("handshake read captures/echo-lo.pcap --port 9502 "
                                  "--format jsonl"))
    rd.add_argument("files", nargs="+", metavar="FILE", help=FILE_HELP + "; several are "
                    "reported one after the other, each on its own (see -j and --merge)")
    rd.add_argument("--port", type=port, help="only segments to or from this TCP port")
    rd.add_argument("--format", default="table",
                    choices=("table", "jsonl", "json", "csv", "zeek", "parquet"),
                    help="output format (default: table); parquet writes a dataset "
                         "partitioned by file into the directory given with -o")
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
                         "pyshark for tunnels and other encapsulations (slower; it reads "
                         "the file into memory before writing)")
    rd.add_argument("--idle-timeout", type=seconds, metavar="SECONDS",
                    help="an open connection quiet longer than this is over: a later packet "
                         "of its 4-tuple starts a new connection (default: never, TCP has "
                         "no idle timeout; a closed connection is over after 60 s, an "
                         "unanswered handshake after 180 s)")
    rd.add_argument("--order", choices=("id", "end"), default="id",
                    help="id (default): connections in the order of their first packet; "
                         "end: in the order they are over, as Zeek's conn.log (less memory "
                         "when long connections stay open; ids are the same)")
    # Filters (issue 13): packets by a BPF filter and a count, then connections.
    flt = rd.add_argument_group(
        "filters", "packets first, as tcpdump -r FILE -c N FILTER would pass them (packet "
        "numbers stay the file's), then connections")
    flt.add_argument("-f", "--filter", metavar="BPF", dest="bpf",
                     help="tcpdump filter syntax, e.g. 'host 10.0.0.1 and tcp port 443' "
                          "(compiled by libpcap, as for sniff)")
    flt.add_argument("-c", "--count", type=count, metavar="N",
                     help="read only the first N packets (that pass -f), like tcpdump -c")
    flt.add_argument("--state", metavar="LIST",
                     help="only connections with these Zeek conn_states, e.g. REJ,S0")
    flt.add_argument("--close", metavar="LIST",
                     help="only connections that closed so, e.g. reset,refused (four_way, "
                          "three_way, simultaneous, reset, refused, unanswered, incomplete, "
                          "open)")
    flt.add_argument("--where", metavar="COND",
                     help="only connections where COND holds, over the csv column names: "
                          "\"irtt > 0.1\", \"server_port == 443 and syn_retransmits > 0\", "
                          "\"conn_state in ('REJ', 'S0')\"")
    # Many files (analyzer.merge, analyzer.parallel, analyzer.dask).
    many = rd.add_argument_group("many files")
    many.add_argument("--merge", action="store_true",
                      help="read the files as one capture in time order, as mergecap "
                           "merges them (rotated captures): a connection crossing files "
                           "is one connection; packet numbers are the merged stream's "
                           "(read into memory, then written)")
    many.add_argument("-j", "--jobs", type=_jobs, metavar="N",
                      help="read N files at a time in worker processes (default: the "
                           "number of cores); the output is the same as with -j 1")
    many.add_argument("--scheduler", metavar="ADDRESS",
                      help="read the files on a Dask cluster, e.g. tcp://HOST:8786 (its "
                           "workers must see the files: a shared file system or fsspec "
                           "URLs; each read into memory); needs the dask extra")

    sh = sub.add_parser("show", help="one connection packet by packet with both states",
                        description="Show one connection packet by packet, like tcpdump, "
                                    "with both endpoints' state after each packet.",
                        **example("handshake show captures/echo-lo.pcap 0"))
    sh.add_argument("file", metavar="FILE", help=FILE_HELP)
    sh.add_argument("conn_id", type=integer, metavar="CONN_ID", help=CONN_ID_HELP)
    sh.add_argument("--port", type=port, help="the same filter as given to read")
    sh.add_argument("-f", "--filter", metavar="BPF", dest="bpf",
                    help="the same BPF filter as given to read (ids depend on it)")
    sh.add_argument("--verify-checksums", action="store_true")
    sh.add_argument("--idle-timeout", type=seconds, metavar="SECONDS",
                    help="the same idle timeout as given to read (ids depend on it)")
    sh.add_argument("--zeek-timers", action="store_true",
                    help="as given to read (ids depend on it)")
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
    from .errors import UsageError
    from .parallel import check_inputs, default_jobs, run
    from .progress import Bar

    options = {"port": args.port, "verify_checksums": args.verify_checksums,
               "zeek_timers": args.zeek_timers, "engine": args.engine,
               "likely_server_ports": args.zeek_likely_server_ports,
               "idle_timeout": args.idle_timeout}
    options.update(_filter_options(args))
    from .options import ReadOptions

    # Bad combinations are one line before any reading.
    ReadOptions(zeek_timers=args.zeek_timers, idle_timeout=args.idle_timeout)
    if args.order != "id" and (args.merge or args.scheduler or args.engine != "native"):
        raise UsageError("--order end streams each file with the native engine: not with "
                         "--merge, --scheduler or --engine pyshark (read into memory, in "
                         "id order)")
    directory = None
    if args.format == "parquet":
        if not args.output or args.output == "-":
            raise UsageError("--format parquet writes a directory: give it with -o DIR")
        directory = args.output
        import pyarrow  # noqa: F401  (a missing extra is one line before any reading)
    if args.scheduler:
        from .dask import require

        require()  # a missing extra is one line before any reading
    # A file that cannot be opened (missing, not a capture) is one error line in its
    # place; the others are still read and reported.
    checked = check_inputs(args.files)
    files = [path for path, error, _ in checked if error is None]
    bar = Bar(sum(size for _, _, size in checked), len(files))
    parts: list[Part] = []
    if files:
        out = None if directory else _open_out(args.output)
        try:
            if args.scheduler:
                from .dask import run_on_cluster

                parts = run_on_cluster(args.scheduler, files, options, args.format, out,
                                       directory, args.merge, bar)
            elif args.merge:
                parts = [_read_merged(files, options, args.format, out, directory, bar)]
            else:
                parts = run(files, options, args.format, args.jobs or default_jobs(), out,
                            directory, bar, args.order)
        finally:
            bar.close()
            if out is not None and out is not sys.stdout:
                out.close()
    return _report(checked, parts, merged=args.merge)


def _filter_options(args: argparse.Namespace) -> Options:
    """read()'s filter arguments, checked before any file is read: a bad filter is one
    line (libpcap's message, the bad value, where a condition goes wrong), exit 2."""
    from .filters import ConnFilter

    if args.bpf is not None:
        from .bpf import compile_filter

        compile_filter(args.bpf)
    ConnFilter.make(args.state, args.close, args.where)
    return {"bpf": args.bpf, "count": args.count, "state": args.state, "close": args.close,
            "where": args.where}


def _read_merged(files: list[str], options: Options, fmt: str, out: TextIO | None,
                 directory: str | None, bar: Bar) -> Part:
    """--merge: one capture; in Parquet each connection is in the partition of the
    file that holds its first packet."""
    from .capture import read
    from .formats import write
    from .parallel import Part, errors_of

    cap = read(files, merge=True, progress=bar.progress_fn("merge"), **options)
    if directory is not None:
        from .parquet import write_partition

        merged = cap.merged
        frame = cap.connections
        first = frame["first_packet"].map(lambda n: merged.locate(n)[0] if merged else "")
        for path in files:
            write_partition(frame[first == path], directory, path)
    else:
        assert out is not None
        write([cap], fmt, out)
    return Part(0, cap.path, list(cap.warnings), errors_of(cap))


def _report(checked: list[tuple[str, CaptureError | None, int]], parts: list[Part], *,
            merged: bool) -> int:
    """Warnings and errors after the output, in the order the files were named (a merged
    read's after the files that could not be opened)."""
    status = 0
    lines: list[str] = []
    done = iter(parts)
    for _, error, _ in checked:
        if error is not None:
            lines.append(f"handshake: error: {error}")
            status = EXIT_BAD_INPUT
            continue
        part = None if merged else next(done)
        if part is not None:
            lines += [f"handshake: warning: {w}" for w in part.warnings]
            lines += [f"handshake: error: {e}" for e in part.errors]
            status = status or (EXIT_BAD_INPUT if part.errors else 0)
    for part in parts if merged else ():
        lines += [f"handshake: warning: {w}" for w in part.warnings]
        lines += [f"handshake: error: {e}" for e in part.errors]
        status = status or (EXIT_BAD_INPUT if part.errors else 0)
    for line in lines:
        print(line, file=sys.stderr)
    return status


def cmd_show(args: argparse.Namespace) -> int:
    from .show import show

    show(args.file, args.conn_id, sys.stdout, port=args.port,
         verify_checksums=args.verify_checksums, bpf=args.bpf, idle_timeout=args.idle_timeout,
         zeek_timers=args.zeek_timers)
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
