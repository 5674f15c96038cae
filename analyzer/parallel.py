"""``handshake read FILE...`` over several files: one after the other, or ``-j N`` at a
time in worker processes.

Each file's part of the output (analyzer.formats: head, one part per file, tail) is made
where the file is read, by the same function whichever way it runs, and the parent
writes the parts in the order the files were given: ``-j 8`` gives the same bytes as
``-j 1``. Workers write their part to a temporary file (a part can be hundreds of MB;
it is copied, never pickled) and report progress through a queue to one bar.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from .progress import Bar

if TYPE_CHECKING:
    from .errors import CaptureError
    from .formats import Part as Written

#: read()'s keyword options as the CLI passes them (port, engine, ...): plain values, so
#: they travel to worker processes and Dask workers as they are.
Options = dict[str, Any]


@dataclass(frozen=True)
class Part:
    """What reading one file gave, besides its output."""

    index: int
    path: str
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # each names the file and the place
    text_file: str | None = None  # a worker process wrote the part here
    text: str | None = None  # a Dask worker sends the part itself
    packets: int = 0  # frames read (for the progress bar's last word)
    connections: int = 0


def default_jobs() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def render(path: str, options: Options, fmt: str, index: int, count: int,
           out: TextIO | None, directory: str | None,
           progress: Callable[[int, int, int, int], None] | None = None,
           bar: Bar | None = None, order: str = "id") -> Part:
    """Read one file and write its part: to ``out`` in a text format, or as its
    partition of the Parquet dataset in ``directory``. ``bar``: the progress line to
    take off a terminal that the part is written to. With the native engine the file
    is streamed (analyzer.stream: each connection written once it is over, in
    ``order``); tshark's (--engine pyshark) is read into memory first."""
    from contextlib import nullcontext

    from .capture import read, stream

    src: Written
    if options.get("engine", "native") == "native":
        streamed = stream(path, progress=progress, order=order,
                          **{k: v for k, v in options.items() if k != "engine"})
        if bar is not None:  # the line is drawn while a chunk is read, not written
            streamed.before_read = lambda: _resume(bar, out)
            streamed.before_write = bar.pause
        src = streamed
    else:
        src = read(path, progress=progress, **options)
    # The line comes off the terminal whatever stdout is: `read f | less` shows both.
    with bar.hidden() if bar is not None else nullcontext():
        _write(src, path, fmt, index, count, out, directory)
        if out is not None:
            out.flush()  # into the pipe before the line is drawn again
    return Part(index, path, list(src.warnings), errors_of(src),
                packets=src.stats["frames"], connections=len(src))


def _resume(bar: Bar, out: TextIO | None) -> None:
    """Before a streamed read reads its next chunk: what was written goes out first,
    then the line may be drawn again."""
    if out is not None and bar.enabled:
        out.flush()
    bar.resume()


def _write(src: Written, path: str, fmt: str, index: int, count: int, out: TextIO | None,
           directory: str | None) -> None:
    if fmt == "parquet":
        from .parquet import write_partition_frames

        assert directory is not None
        write_partition_frames(_frames(src), directory, path)
    else:
        from .formats import write_part

        assert out is not None
        write_part(src, fmt, index, count, out)


def _frames(src: Written) -> Iterator[Any]:
    """The connections frame of each batch (one of no connection when there is none)."""
    from .frames import batch_frame
    from .results import empty_batch

    empty = True
    for batch in src.batches():
        empty = False
        yield batch_frame(batch)
    if empty:
        yield batch_frame(empty_batch())


def errors_of(cap: Written) -> list[str]:
    """One line per error: a merged capture may have one per file."""
    if cap.merged:
        return [str(e) for e in cap.merged.errors]
    return [str(cap.error)] if cap.error else []


def check_inputs(paths: Sequence[str]) -> list[tuple[str, CaptureError | None, int]]:
    """Every file opened once before any output: ``(path, error, size)`` in order, the
    error (missing, not a capture) being None for a file that can be read. The sizes
    make the progress bar's total."""
    from .errors import CaptureError
    from .source import open_source

    checked: list[tuple[str, CaptureError | None, int]] = []
    for path in paths:
        if path == "-" or (os.path.exists(path) and not os.path.isfile(path)
                           and not os.path.isdir(path)):
            checked.append((path, None, 0))  # a pipe: opening it would consume its start
            continue
        try:
            source = open_source(path)
        except CaptureError as exc:
            checked.append((path, exc, 0))
            continue
        checked.append((path, None, source.size))
        source.close()
    return checked


def run(paths: Sequence[str], options: Options, fmt: str, jobs: int, out: TextIO | None,
        directory: str | None, bar: Bar, order: str = "id") -> list[Part]:
    """Every file's part, written to ``out`` (or ``directory``) in the order of
    ``paths``, between the format's head and tail. Returns the parts (warnings and
    errors) in the same order."""
    from .formats import head, tail

    if out is not None:
        out.write(head(fmt, len(paths)))
    # Pipes (-, <(zcat ...)) belong to this process: read everything here then.
    if jobs <= 1 or len(paths) <= 1 or not all(os.path.isfile(p) for p in paths):
        parts = [render(p, options, fmt, i, len(paths), out, directory, bar.progress_fn(i),
                        bar, order) for i, p in enumerate(paths)]
    else:
        parts = list(_in_processes(paths, options, fmt, jobs, out, directory, bar, order))
    if out is not None:
        out.write(tail(fmt, len(paths)))
    return parts


# ---- worker processes ----------------------------------------------------------------

_REPORTS: Any = None  # the worker's end of the progress queue (set by _start_worker)


def _start_worker(reports: Any) -> None:
    global _REPORTS
    _REPORTS = reports


class _QueueProgress:
    """read()'s progress callback in a worker: at most a few reports a second."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.last = 0.0

    def __call__(self, done: int, total: int, packets: int, connections: int) -> None:
        now = time.monotonic()
        if now - self.last >= 0.1 or done >= total:
            self.last = now
            _REPORTS.put((self.index, done, packets, connections))


def _worker(path: str, options: Options, fmt: str, index: int, count: int,
            scratch: str, directory: str | None, order: str) -> Part:
    progress = _QueueProgress(index)
    if fmt == "parquet":
        part = render(path, options, fmt, index, count, None, directory, progress,
                      order=order)
        return part
    name = os.path.join(scratch, f"part-{index}")
    with open(name, "w", encoding="utf-8", newline="") as out:
        part = render(path, options, fmt, index, count, out, directory, progress,
                      order=order)
    return Part(part.index, part.path, part.warnings, part.errors, text_file=name,
                packets=part.packets, connections=part.connections)


def _in_processes(paths: Sequence[str], options: Options, fmt: str, jobs: int,
                  out: TextIO | None, directory: str | None, bar: Bar,
                  order: str) -> Iterator[Part]:
    import multiprocessing

    # forkserver: workers start from a clean process, not a copy of this one's threads.
    ctx = multiprocessing.get_context("forkserver")
    reports = ctx.Queue()
    stop = threading.Event()

    def relay() -> None:  # worker reports -> the one bar
        while True:
            try:
                index, done, packets, connections = reports.get(timeout=0.05)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            bar.update(index, done, packets, connections)

    relay_thread = threading.Thread(target=relay, daemon=True)
    relay_thread.start()
    try:
        with tempfile.TemporaryDirectory(prefix="handshake-") as scratch, \
                ProcessPoolExecutor(max_workers=min(jobs, len(paths)), mp_context=ctx,
                                    initializer=_start_worker, initargs=(reports,)) as pool:
            pending: deque[Future[Part]] = deque()
            todo = iter(enumerate(paths))
            while True:
                # A few files ahead of the one being written: parts wait on disk, not
                # in memory, and at most 2 x jobs of them.
                while len(pending) < 2 * jobs:
                    nxt = next(todo, None)
                    if nxt is None:
                        break
                    index, path = nxt
                    pending.append(pool.submit(_worker, path, options, fmt, index,
                                               len(paths), scratch, directory, order))
                if not pending:
                    break
                part = pending.popleft().result()
                # Its final figures, whenever its last report comes through the queue.
                bar.update(part.index, os.path.getsize(part.path), part.packets,
                           part.connections)
                if part.text_file is not None:
                    if out is not None:
                        with open(part.text_file, encoding="utf-8", newline="") as text, \
                                bar.hidden():
                            shutil.copyfileobj(text, out, 1 << 20)
                            out.flush()
                    os.unlink(part.text_file)
                yield part
    finally:
        stop.set()
        relay_thread.join()
        reports.close()
