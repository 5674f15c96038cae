"""Engine.row_columns (numpy columns) says exactly what Engine.rows (tuples) says."""

from __future__ import annotations

from pathlib import Path

import pytest

import analyzer
from analyzer.columns import ROW_DTYPES, row_columns

CAPTURES = sorted((Path(__file__).resolve().parents[1] / "captures").glob("*.pcap*"))


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_columns_equal_rows(path: Path) -> None:
    cap = analyzer.read(str(path), record=-2)
    rows = cap.packet_rows()
    assert rows and len(rows[0]) == len(ROW_DTYPES)
    cols = row_columns(cap.engine)
    for j, name in enumerate(ROW_DTYPES):
        assert cols[name].tolist() == [r[j] for r in rows], name
    for conn_id in range(len(cap)):
        one = row_columns(cap.engine, conn_id)
        assert one["pkt_no"].tolist() == [r[0] for r in rows if r[2] == conn_id]


def test_no_rows_without_record() -> None:
    cap = analyzer.read(str(CAPTURES[0]))
    assert all(len(v) == 0 for v in row_columns(cap.engine).values())
