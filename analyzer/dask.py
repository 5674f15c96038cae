"""Many captures on a Dask cluster: ``analyzer.dask.read`` and ``handshake read
--scheduler``.

Each file is one task (one partition): a worker reads it with the compiled engine and
returns its ``Capture.connections`` rows plus a ``file`` column; with ``merge=True``
all files are one task, read merged (analyzer.merge). Tasks run on the active
``dask.distributed`` client, or on a ``LocalCluster`` started for this process when
there is none. Workers must see the files: a shared file system, or fsspec URLs
(``s3://bucket/cap-*.pcap.gz`` with s3fs installed), which a worker copies to its
temporary directory before reading.

dask, distributed and pandas are imported here only (``pip install
'handshake-analyzer[dask]'``); ``import analyzer`` never imports this module.
"""

from __future__ import annotations

import glob as globbing
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO

from .parallel import Options, Part

if TYPE_CHECKING:
    import pandas as pd

    from .capture import Capture

INSTALL = "pip install 'handshake-analyzer[dask]'"
PROGRESS_TOPIC = "handshake-progress"
_LOCAL: list[Any] = []  # the LocalCluster client this process started, if any


def require() -> None:
    """One line naming the extra when dask is missing."""
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ModuleNotFoundError as exc:
        missing = (exc.name or "dask").split(".")[0]
        raise ModuleNotFoundError(f"analyzer.dask needs {missing}: {INSTALL}",
                                  name=missing) from None


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def expand(paths_or_glob: str | Sequence[str]) -> list[str]:
    """File names from a glob, a list of globs/paths, or fsspec URLs (globbed by
    fsspec), in sorted order within each pattern."""
    patterns = [paths_or_glob] if isinstance(paths_or_glob, str) else list(paths_or_glob)
    files: list[str] = []
    for pattern in patterns:
        if _is_url(pattern):
            import fsspec

            fs, _, found = fsspec.core.get_fs_token_paths(pattern)
            protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
            files += sorted(f"{protocol}://{p}" for p in found)
        elif globbing.has_magic(pattern):
            files += sorted(globbing.glob(pattern))
        else:
            files.append(pattern)
    if not files:
        from .errors import UsageError

        raise UsageError(f"no capture files match {paths_or_glob!r}")
    return files


def client(address: str | None = None) -> Any:
    """The client tasks run on: ``address``'s scheduler, else the active client, else a
    LocalCluster started once for this process."""
    require()
    import distributed

    if address:
        return distributed.Client(address)
    try:
        return distributed.get_client()
    except ValueError:  # no client yet
        pass
    if not _LOCAL:
        cluster = distributed.LocalCluster(processes=True, threads_per_worker=1,
                                           dashboard_address=None)
        _LOCAL.append(distributed.Client(cluster))
    return _LOCAL[0]


@contextmanager
def _local_copy(path: str) -> Iterator[str]:
    """A local file name for ``path`` (an fsspec URL is copied to a temporary file)."""
    if not _is_url(path):
        yield path.removeprefix("file://")
        return
    import fsspec

    with tempfile.TemporaryDirectory(prefix="handshake-") as scratch:
        local = os.path.join(scratch, os.path.basename(path) or "capture")
        with fsspec.open(path, "rb") as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield local


class _EventProgress:
    """read()'s progress callback on a worker: events the client's bar listens to."""

    def __init__(self, index: int) -> None:
        import time

        self.index, self.last, self.clock = index, 0.0, time.monotonic

    def __call__(self, done: int, total: int, packets: int, connections: int) -> None:
        now = self.clock()
        if now - self.last < 0.2 and done < total:
            return
        self.last = now
        try:
            from distributed import get_worker

            get_worker().log_event(PROGRESS_TOPIC, (self.index, done, packets, connections))
        except ValueError:  # not on a worker (a synchronous scheduler): no bar
            pass


def _read(paths: Sequence[str], names: Sequence[str], options: Options, merge: bool,
          index: int) -> tuple[Capture, Part]:
    """Read on a worker: ``paths`` as the worker opens them, ``names`` as the user gave
    them (the Capture, its output and its messages use those)."""
    from contextlib import ExitStack

    from .capture import read
    from .parallel import errors_of

    with ExitStack() as stack:
        local = [stack.enter_context(_local_copy(p)) for p in paths]
        cap = read(local if merge else local[0], merge=merge,
                   progress=_EventProgress(index), **options)
    cap.path = "+".join(names)
    if cap.merged is not None:
        cap.merged = replace(cap.merged, files=tuple(names))

    def named(message: str) -> str:
        for opened, name in zip(local, names, strict=True):
            message = message.replace(opened, name)
        return message

    part = Part(index, cap.path, [named(w) for w in cap.warnings],
                [named(e) for e in errors_of(cap)], packets=cap.stats["frames"],
                connections=len(cap))
    return cap, part


def _with_file(cap: Capture) -> pd.DataFrame:
    """``Capture.connections`` plus ``file`` (merged: the file of the first packet)."""
    frame = cap.connections.copy()
    if cap.merged is not None:
        locate = cap.merged.locate
        frame["file"] = [locate(int(n))[0] for n in frame["first_packet"]]
    else:
        frame["file"] = cap.path
    return frame


def connections(paths: Sequence[str], options: Options, merge: bool = False,
                index: int = 0, names: Sequence[str] | None = None) -> pd.DataFrame:
    """One partition: the connections of one file (or of all, merged), with ``file``."""
    cap, _ = _read(paths, names or paths, options, merge, index)
    return _with_file(cap)


def _meta(options: Options) -> pd.DataFrame:
    """An empty partition with every column's type (what dask needs to plan)."""
    from .frames import connections_frame
    from .options import ReadOptions
    from .results import Results

    engine = ReadOptions(port=options.get("port")).new_engine()
    engine.finish()
    empty = connections_frame(Results(path="", engine=engine, stats=engine.stats(),
                                      warnings=[]))
    empty["file"] = empty.index.astype(str)  # object dtype, no rows
    return empty


def read(paths_or_glob: str | Sequence[str], merge: bool = False, **options: Any
         ) -> Any:
    """A ``dask.dataframe.DataFrame`` of the connections of every file (one partition
    per file, or one for all with ``merge=True``): the columns of
    ``Capture.connections`` plus ``file``, indexed by ``conn_id`` (per file). Options
    are ``analyzer.read``'s (port, verify_checksums, zeek_timers, likely_server_ports).
    Computed on the active dask.distributed client, or a LocalCluster."""
    require()
    import dask.dataframe as dd
    from dask.base import tokenize
    from dask.delayed import delayed

    files = expand(paths_or_glob)
    client()  # dask computes on the default client from now on
    groups = [files] if merge else [[f] for f in files]
    parts = [delayed(connections)(group, options, merge, i,
                                  dask_key_name=f"handshake-{i}-{tokenize(group, options)}")
             for i, group in enumerate(groups)]
    return dd.from_delayed(parts, meta=_meta(options), verify_meta=False)


# ---- handshake read --scheduler -------------------------------------------------------

def _text_part(paths: Sequence[str], names: Sequence[str], options: Options, fmt: str,
               index: int, count: int, merge: bool) -> Part:
    """A worker's share of a text format: the part itself travels back."""
    import io

    from .formats import write, write_part

    cap, part = _read(paths, names, options, merge, index)
    out = io.StringIO()
    if merge:
        write([cap], fmt, out)
    else:
        write_part(cap, fmt, index, count, out)
    return replace(part, text=out.getvalue())


def _frame_part(paths: Sequence[str], names: Sequence[str], options: Options, index: int,
                merge: bool) -> tuple[Part, pd.DataFrame]:
    cap, part = _read(paths, names, options, merge, index)
    return part, _with_file(cap)


def run_on_cluster(address: str, files: Sequence[str], options: Options, fmt: str,
                   out: TextIO | None, directory: str | None, merge: bool, bar: Any
                   ) -> list[Part]:
    """``handshake read --scheduler ADDRESS``: every file a task on the cluster; the
    output is written here, in the order of the files, exactly as without a cluster."""
    from .errors import UsageError
    from .formats import head, tail
    from .parquet import write_partition

    for path in files:  # workers open the files themselves: no pipe of this process
        if not _is_url(path) and not os.path.isfile(path):
            raise UsageError(f"{path}: --scheduler reads files the workers can open, not "
                             "a pipe or standard input")
    remote = client(address)
    sizes = {i: _size(p) for i, p in enumerate(files)}

    def progress(event: Any) -> None:
        _, (index, done, packets, conns) = event
        bar.update(index, done, packets, conns)

    remote.subscribe_topic(PROGRESS_TOPIC, progress)
    try:
        # Workers may run elsewhere: local names made absolute (a shared file system).
        opened = [p if _is_url(p) else os.path.abspath(p) for p in files]
        groups = [(opened, list(files))] if merge else [([o], [f]) for o, f in
                                                          zip(opened, files, strict=True)]
        parts: list[Part] = []
        if directory is not None:
            futures = [remote.submit(_frame_part, g, n, options, i, merge, pure=False)
                       for i, (g, n) in enumerate(groups)]
            for future in futures:
                part, frame = future.result()
                for path in groups[part.index][1]:
                    write_partition(frame[frame["file"] == path].drop(columns="file"),
                                    directory, path)
                parts.append(_finished(bar, part, sizes, merge))
            return parts
        assert out is not None
        count = 1 if merge else len(files)
        if not merge:
            out.write(head(fmt, count))
        futures = [remote.submit(_text_part, g, n, options, fmt, i, count, merge, pure=False)
                   for i, (g, n) in enumerate(groups)]
        for future in futures:
            part = future.result()
            assert part.text is not None
            out.write(part.text)
            parts.append(_finished(bar, replace(part, text=None), sizes, merge))
        if not merge:
            out.write(tail(fmt, count))
        return parts
    finally:
        remote.unsubscribe_topic(PROGRESS_TOPIC)
        remote.close()


def _finished(bar: Any, part: Part, sizes: dict[int, int], merge: bool) -> Part:
    """The bar gets a finished input's final figures, whatever events are in flight."""
    bar.update(part.index, sum(sizes.values()) if merge else sizes[part.index],
               part.packets, part.connections)
    return part


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
