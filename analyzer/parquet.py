"""``--format parquet -o DIR``: the connections as a Parquet dataset partitioned by file.

The layout is Hive's, which DuckDB (``read_parquet('DIR/**/*.parquet',
hive_partitioning=true)``), pandas/pyarrow (``pd.read_parquet(DIR)``) and Spark
(``spark.read.parquet(DIR)``) read as one table with a ``file`` column:
``DIR/file=<the path as given, percent-encoded>/part-0.parquet``, one directory per
input file. The columns are those of ``Capture.connections``; times are written in
microseconds (Spark does not read nanosecond Parquet timestamps), durations and RTTs as
Arrow durations in nanoseconds. pyarrow is imported here only.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

PARTITION = "file"


def partition_dir(directory: str, path: str) -> str:
    """Where the rows of input ``path`` go: ``DIR/file=<percent-encoded path>``."""
    return os.path.join(directory, f"{PARTITION}={urllib.parse.quote(path, safe='')}")


def write_partition(frame: pd.DataFrame, directory: str, path: str) -> str:
    """One input's connections (a ``Capture.connections`` frame) as its partition;
    returns the file written. An input without connections still gets its (empty)
    part, so every input is listed."""
    return write_partition_frames([frame], directory, path)


#: Rows per row group. The writer keeps every row group's metadata (about 70 column
#: chunks with statistics) until the file is closed: groups of a streamed read's batch
#: (2048 rows) made that grow with the capture (291 -> 382 MB peak from 1 M to 20 M
#: packets); groups this size keep it small and hold a few MB of rows.
ROW_GROUP = 16384


def write_partition_frames(frames: Iterable[pd.DataFrame], directory: str, path: str) -> str:
    """One input's connections given as several frames (at least one: a streamed read's
    batches, in order), written as they come in row groups of ROW_GROUP rows: the same
    table as the frames concatenated."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = partition_dir(directory, path)
    os.makedirs(target, exist_ok=True)
    name = os.path.join(target, "part-0.parquet")
    writer = None
    held: list[pa.Table] = []
    rows = 0

    def flush() -> None:
        nonlocal writer, rows
        table = pa.concat_tables(held)
        held.clear()
        rows = 0
        if writer is None:
            writer = pq.ParquetWriter(name, table.schema, coerce_timestamps="us",
                                      allow_truncated_timestamps=True)
        writer.write_table(table.cast(writer.schema), row_group_size=ROW_GROUP)

    try:
        for frame in frames:
            table = pa.Table.from_pandas(frame.drop(columns=[PARTITION], errors="ignore"),
                                         preserve_index=False)
            if held and table.schema != held[0].schema:
                flush()  # a batch without a value in some column may type it otherwise
            held.append(table)
            rows += table.num_rows
            if rows >= ROW_GROUP:
                flush()
        if held:
            flush()
    finally:
        if writer is not None:
            writer.close()
    return name
