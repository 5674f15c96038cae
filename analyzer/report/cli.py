"""``handshake plot`` and ``handshake report``. Only the standard library is imported
here; matplotlib loads when a command runs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

KINDS = ("sequence", "ladder", "overview", "fsm")
FORMATS = (".png", ".svg", ".pdf")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]
             ) -> dict[str, Callable[[argparse.Namespace], int]]:
    from ..argtypes import count, integer, non_negative
    from ..cli import CONN_ID_HELP, FILE_HELP, example

    pl = sub.add_parser("plot", help="draw one connection or the capture as PNG/SVG/PDF",
                        description="Draw a time-sequence graph or ladder diagram of one "
                                    "connection, the capture overview, or the TCP state "
                                    "diagram.",
                        **example("handshake plot captures/echo-lo.pcap --conn 0 --kind ladder "
                                  "-o ladder.svg"))
    pl.add_argument("file", metavar="FILE", nargs="?",
                    help=FILE_HELP + " (not needed for --kind fsm)")
    pl.add_argument("--conn", type=integer, metavar="ID",
                    help="sequence, ladder: " + CONN_ID_HELP)
    pl.add_argument("--kind", choices=KINDS, default="sequence", help="default: sequence")
    pl.add_argument("-o", "--output", required=True, metavar="OUT",
                    help="output file: .png, .svg or .pdf")
    pl.add_argument("--absolute", action="store_true",
                    help="sequence: absolute sequence numbers instead of relative ones")
    pl.add_argument("--max-packets", type=count, default=40, metavar="N",
                    help="ladder: collapse data runs beyond N packets (default 40)")
    pl.add_argument("--dpi", type=count, default=110, help="PNG resolution (default 110)")

    rp = sub.add_parser("report", help="self-contained HTML report of capture files",
                        description="Write one self-contained HTML file: summary, overview "
                                    "plots, connection table, and a ladder and "
                                    "time-sequence graph of the most telling connections. "
                                    "Progress is shown when stderr is a terminal.",
                        **example("handshake report captures/echo-lo.pcap -o report.html"))
    rp.add_argument("files", nargs="+", metavar="FILE", help=FILE_HELP)
    rp.add_argument("-o", "--output", required=True, metavar="OUT", help="the .html file")
    rp.add_argument("--limit", type=non_negative, metavar="N", default=20,
                    help="ladder and time-sequence graphs for the N most telling "
                         "connections of each capture: resets, failed handshakes, "
                         "retransmissions, slowest handshakes (default 20; every "
                         "connection is in the table)")
    return {"plot": cmd_plot, "report": cmd_report}


def _check_output(path: str) -> str:
    from ..errors import UsageError

    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise UsageError(f"{path}: unknown image format {ext or '(none)'}; use "
                         f"{', '.join(FORMATS)}")
    return ext


def _read(path: str, record: int | None) -> object:
    from ..capture import TerminalProgress, read
    from ..errors import CaptureError
    from ..source import is_tty

    bar = TerminalProgress(path) if is_tty(sys.stderr) else None
    try:
        cap = read(path, record=record, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    if cap.error and not len(cap):
        raise CaptureError(cap.path, str(cap.error).split(": ", 1)[-1])
    return cap


def cmd_plot(args: argparse.Namespace) -> int:
    from ..errors import UsageError

    ext = _check_output(args.output)
    if args.kind == "fsm":
        from . import fsm_plot

        fig = fsm_plot()
    else:
        if not args.file:
            raise UsageError(f"--kind {args.kind} needs a capture FILE")
        if args.kind == "overview":
            from . import overview_plot

            fig = overview_plot(_read(args.file, None))  # type: ignore[arg-type]
        else:
            if args.conn is None:
                raise UsageError(f"--kind {args.kind} needs --conn ID")
            cap = _read(args.file, args.conn)
            cap.record(args.conn)  # type: ignore[attr-defined]  # unknown id: one line
            if args.kind == "ladder":
                from . import ladder_plot

                fig = ladder_plot(cap, args.conn, max_packets=args.max_packets)  # type: ignore[arg-type]
            else:
                from . import sequence_plot

                fig = sequence_plot(cap, args.conn, absolute=args.absolute)  # type: ignore[arg-type]
    _save(fig, args.output, args.dpi if ext == ".png" else None)
    return 0


def _save(fig: object, path: str, dpi: int | None) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ..errors import UsageError

    FigureCanvasAgg(fig)  # type: ignore[arg-type]
    try:
        fig.savefig(path, dpi=dpi or "figure")  # type: ignore[attr-defined]
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror or exc}") from None


def cmd_report(args: argparse.Namespace) -> int:
    from ..source import is_tty
    from . import write_html_report

    caps = [_read(path, -2) for path in args.files]
    bar = DrawingProgress() if is_tty(sys.stderr) else None
    try:
        write_html_report(caps, args.output, limit=args.limit,  # type: ignore[arg-type]
                          progress=bar)
    finally:
        if bar is not None:
            bar.close()
    return 0


class DrawingProgress:
    """``drawing diagrams: 7/20 connections`` on stderr (a terminal), then erased."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        sys.stderr.write(f"\rdrawing diagrams: {done}/{total} connections")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
