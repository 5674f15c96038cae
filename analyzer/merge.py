"""Several capture files read as one capture, in time order, as ``mergecap`` merges them.

A capture rotated by ``tcpdump -C``/``-G`` or ``dumpcap -b`` splits connections at file
boundaries; read merged, a connection that crosses a boundary is one connection. The
files are framed separately (each may be pcap or pcapng, gzip or not, with its own link
types) and their packets interleaved by timestamp by the compiled ``Merger``
(csrc/merge.c): equal times keep the order of the files as given, and one file's packets
keep their order in the file, as mergecap does.

Packet numbers are those of the merged stream (the numbers Wireshark shows for
``mergecap -w merged.pcapng FILE...``), so a record equals the one read from the
unsplit capture; :meth:`MergedFiles.locate` turns such a number back into the file and
the packet's number in that file.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _engine
from .errors import CaptureError

if TYPE_CHECKING:
    from .options import ProgressFn, ReadOptions

# Per-file read size when many files are open at once: all of them are read ahead by one
# chunk, so the chunk shrinks as the number of files grows (about 256 MiB in all).
MERGE_BUDGET = 256 << 20
MIN_CHUNK = 64 << 10


@dataclass(frozen=True)
class MergedFiles:
    """Where the packets of a merged capture came from."""

    files: tuple[str, ...]
    # Runs of consecutive packets from one file: (first merged number, file index,
    # that packet's number in its file); sorted by the first column.
    runs: tuple[tuple[int, int, int], ...]
    # Every file that ended on a corrupt record (Capture.error is the first of them).
    errors: tuple[CaptureError, ...] = ()

    def locate(self, packet: int) -> tuple[str, int]:
        """The file holding merged packet number ``packet`` (1-based) and its number in
        that file."""
        k = bisect.bisect_right(self.runs, (packet, len(self.files), 0)) - 1
        if packet < 1 or k < 0:
            raise IndexError(f"no packet {packet} in the merged capture")
        first, index, local = self.runs[k]
        return self.files[index], local + packet - first

    def fields(self, first_packet: int, last_packet: int) -> dict[str, str | int]:
        """The record fields that name a connection's first and last packet in their
        files: ``first_file``, ``first_file_packet``, ``last_file``, ``last_file_packet``."""
        first_file, first_number = self.locate(first_packet)
        last_file, last_number = self.locate(last_packet)
        return {"first_file": first_file, "first_file_packet": first_number,
                "last_file": last_file, "last_file_packet": last_number}


def track(paths: Sequence[str], options: ReadOptions, progress: ProgressFn | None = None
          ) -> tuple[Any, dict[str, int], list[str], CaptureError | None, MergedFiles]:
    """``analyzer.read(paths, merge=True)``: see there and the module's doc.

    A corrupt record ends its file there (the error names the file, byte offset and
    packet number); the other files are still merged, and everything before the
    problem is kept. ``Capture.error`` is the first such error, ``merged.errors`` all.
    """
    from .options import capture_stats, time_warnings
    from .source import CHUNK, open_source

    files = tuple(paths)
    sources = [open_source(p) for p in files]  # every file is checked before reading
    chunk = max(MIN_CHUNK, min(CHUNK, MERGE_BUDGET // len(files)))
    for s in sources:
        s.chunk_size = chunk
    streams = [s.chunks() for s in sources]
    total = sum(s.size for s in sources)
    done = [0] * len(files)
    merger = _engine.Merger(len(files))
    tracker = options.new_engine()
    errors: list[CaptureError] = []
    warnings: list[str] = []
    report: Callable[[], None] = (
        (lambda: progress(sum(done), total, tracker.stats()["frames"], tracker.conn_count()))
        if progress else (lambda: None))
    while (i := merger.need()) != -2:
        if i == -1:
            tracker.feed_frames(merger.drain())
            report()
            continue
        piece = next(streams[i], None)
        if piece is None:  # the end of file i
            left = merger.close(i)
            source = sources[i]
            offset, packets, _ = merger.position(i)
            if source.read_error is not None:
                errors.append(CaptureError(files[i], f"{source.read_error} at byte "
                                                     f"{source.delivered} (after packet "
                                                     f"{packets})",
                                           offset=source.delivered, packet=packets))
            elif left or source.truncated_stream:
                warnings.append(f"{files[i]}: truncated at byte {offset} after packet "
                                f"{packets}")
            continue
        done[i] = piece.position
        try:
            merger.feed(i, piece.data)
        except _engine.FormatError as exc:
            message, offset, packets = exc.args
            errors.append(CaptureError(files[i], message, offset=offset, packet=packets))
            merger.close(i)
            sources[i].close()
    tracker.finish()
    report()
    stats = capture_stats(tracker)
    # The engine framed nothing itself: the files' own counts, as read unmerged.
    positions = [merger.position(i) for i in range(len(files))]
    stats["bytes_framed"] = sum(p[0] for p in positions)
    stats["packets_framed"] = sum(p[1] for p in positions)
    formats = {p[2] for p in positions}
    stats["format"] = formats.pop() if len(formats) == 1 else 0  # 0: mixed
    path = "+".join(files)
    warnings += time_warnings(path, stats)
    return (tracker, stats, warnings, errors[0] if errors else None,
            MergedFiles(files, tuple(merger.origins()), tuple(errors)))
