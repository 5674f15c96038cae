"""analyzer.dask and ``handshake read --scheduler`` on a real Dask cluster: a ``dask
scheduler`` and two ``dask worker`` processes on 127.0.0.1 (ephemeral ports), started
here and always torn down. Every result equals the serial one."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import analyzer

distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")
pytest.importorskip("dask.dataframe")
pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"


def _start(cmd: list[str], ready: str) -> tuple[subprocess.Popen[str], re.Match[str]]:
    """Start a dask process and wait for the log line that says it is up."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(ready, line)
        if found:
            return proc, found
    raise AssertionError(f"{cmd[2]} exited ({proc.wait()}) before saying {ready!r}")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """The scheduler's address, with two single-threaded workers registered."""
    procs: list[subprocess.Popen[str]] = []
    try:
        sched, found = _start([sys.executable, "-m", "distributed.cli.dask_scheduler",
                               "--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
                              r"Scheduler at:\s+(tcp://\S+)")
        procs.append(sched)
        address = found[1]
        for _ in range(2):
            worker, _ = _start([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                                "--host", "127.0.0.1"], r"Registered to:")
            procs.append(worker)
        with distributed.Client(address) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The loopback capture cut in parts (connections cross them) plus other captures."""
    work = tmp_path_factory.mktemp("dask")
    data = (CAPTURES / "echo-lo.pcap").read_bytes()
    import struct

    # Cut after whole records, by hand: 3 parts of the same capture.
    offsets, pos = [], 24
    while pos < len(data):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    cuts = [offsets[40], offsets[90]]
    parts = [data[:cuts[0]], data[:24] + data[cuts[0]:cuts[1]], data[:24] + data[cuts[1]:]]
    out = []
    for i, part in enumerate(parts):
        path = work / f"part-{i}.pcap"
        path.write_bytes(part)
        out.append(str(path))
    return [*out, str(CAPTURES / "many-clients.pcap"), str(CAPTURES / "echo.pcapng")]


def _serial(paths: list[str], merge: bool = False) -> pd.DataFrame:
    if merge:
        cap = analyzer.read(paths, merge=True)
        frame = cap.connections.copy()
        frame["file"] = [cap.merged.locate(int(n))[0] for n in frame["first_packet"]]
        return frame
    frames = []
    for path in paths:
        frame = analyzer.read(path).connections.copy()
        frame["file"] = path
        frames.append(frame)
    return pd.concat(frames)


def test_dask_read_on_the_cluster_equals_the_serial_read(cluster: str, files: list[str]
                                                         ) -> None:
    import analyzer.dask

    with distributed.Client(cluster) as client, \
            distributed.get_task_stream(client) as tasks:
        frame = analyzer.dask.read(files)
        assert frame.npartitions == len(files)
        assert list(frame.columns) == [*analyzer.read(files[0]).connections.columns, "file"]
        result = frame.compute()
        cluster_workers = set(client.scheduler_info()["workers"])
    pd.testing.assert_frame_equal(result, _serial(files))
    # The work ran on the cluster's workers, not in this process.
    workers = {t["worker"] for t in tasks.data}
    assert workers and workers <= cluster_workers


def test_dask_read_merged_and_globbed(cluster: str, files: list[str]) -> None:
    import analyzer.dask

    parts = files[:3]
    pattern = str(Path(parts[0]).parent / "part-*.pcap")
    with distributed.Client(cluster):
        globbed = analyzer.dask.read(pattern).compute()
        merged = analyzer.dask.read(pattern, merge=True)
        assert merged.npartitions == 1
        merged_rows = merged.compute()
    pd.testing.assert_frame_equal(globbed, _serial(parts))
    pd.testing.assert_frame_equal(merged_rows, _serial(parts, merge=True))
    # Merged, the cut capture is the whole one again.
    whole = analyzer.read(str(CAPTURES / "echo-lo.pcap")).connections
    pd.testing.assert_frame_equal(merged_rows.drop(columns="file"), whole)
    assert merged_rows["file"].nunique() == 3


def handshake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True,
                          text=True, check=False, cwd=ROOT, timeout=300)


@pytest.mark.parametrize("fmt", ["jsonl", "table", "csv", "json"])
def test_cli_scheduler_output_is_the_serial_output(cluster: str, files: list[str],
                                                   fmt: str) -> None:
    remote = handshake("read", "--scheduler", cluster, "--format", fmt, *files)
    local = handshake("read", "-j", "1", "--format", fmt, *files)
    assert remote.returncode == local.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout and remote.stderr == local.stderr
    merged = handshake("read", "--scheduler", cluster, "--merge", "--format", fmt, *files[:3])
    assert merged.stdout == handshake("read", "--merge", "--format", fmt, *files[:3]).stdout


def test_cli_scheduler_parquet_dataset(cluster: str, files: list[str], tmp_path: Path) -> None:
    remote = handshake("read", "--scheduler", cluster, "--format", "parquet", "-o",
                       str(tmp_path / "remote"), *files)
    assert remote.returncode == 0, remote.stderr
    local = handshake("read", "--format", "parquet", "-o", str(tmp_path / "local"), *files)
    assert local.returncode == 0, local.stderr
    a, b = (pd.read_parquet(tmp_path / d) for d in ("remote", "local"))
    key = ["file", "id"]
    a = a.astype({"file": str}).sort_values(key).reset_index(drop=True)
    b = b.astype({"file": str}).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert set(a["file"]) == set(files)
    # The rows are the connections, times to the microsecond (Spark's resolution).
    serial = _serial(files).reset_index(drop=True)
    assert len(a) == len(serial)
    duckdb = pytest.importorskip("duckdb")
    counts = dict(duckdb.sql(
        f"select file, count(*) from read_parquet('{tmp_path / 'remote'}/*/*.parquet', "
        "hive_partitioning = true) group by file").fetchall())
    assert counts == serial.groupby("file").size().to_dict()


def test_progress_bar_on_the_cluster(cluster: str, files: list[str]) -> None:
    from test_parallel import _on_a_pty

    out, tty = _on_a_pty("read", "--scheduler", cluster, "--format", "jsonl", *files)
    last = [c for c in tty.replace("\x1b[K", "").split("\r") if c.strip()][-1]
    total = sum(os.path.getsize(p) for p in files)
    assert last.startswith(f"{len(files)} files  {total / 1e3:.1f} kB / {total / 1e3:.1f} kB"
                           "  100%")
    assert f" {len(out.splitlines()):,} connections" in last


def test_import_analyzer_does_not_import_dask() -> None:
    code = ("import sys, analyzer; analyzer.read('captures/echo-lo.pcap').records(); "
            "import analyzer.parallel, analyzer.merge, analyzer.cli; "
            "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["dask", "distributed"])
def test_without_the_extra_the_error_is_one_line(module: str) -> None:
    code = (f"import sys; sys.modules[{module!r}] = None; from analyzer.cli import main; "
            "sys.exit(main(['read', '--scheduler', 'tcp://127.0.0.1:1', "
            "'captures/echo-lo.pcap']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=ROOT, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"handshake: error: read needs {module}: "
                           "pip install 'handshake-analyzer[dask]'\n")
    code = (f"import sys; sys.modules[{module!r}] = None; import analyzer.dask\n"
            "try:\n    analyzer.dask.read('captures/echo-lo.pcap')\n"
            "except ModuleNotFoundError as exc:\n    print(exc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT, timeout=60)
    assert done.stdout == (f"analyzer.dask needs {module}: "
                           "pip install 'handshake-analyzer[dask]'\n")


def test_without_a_client_a_local_cluster_computes(files: list[str]) -> None:
    code = ("import json, sys, analyzer.dask, distributed\n"
            f"frame = analyzer.dask.read({files[:2]!r}).compute()\n"
            "client = distributed.get_client()\n"
            "print(json.dumps([len(frame), type(client.cluster).__name__]))\n"
            "client.close(); client.cluster.close()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=ROOT, timeout=180)
    assert done.returncode == 0, done.stderr
    rows, kind = json.loads(done.stdout.strip().splitlines()[-1])
    assert kind == "LocalCluster" and rows == len(_serial(files[:2]))


def test_fsspec_urls_are_expanded_and_copied_for_reading(files: list[str]) -> None:
    """A URL (here fsspec's in-memory file system, in this process) is globbed by fsspec
    and copied to a local file before reading; rows and ``file`` name the URL."""
    fsspec = pytest.importorskip("fsspec")
    import analyzer.dask

    fs = fsspec.filesystem("memory")
    for i, path in enumerate(files[:3]):
        fs.pipe(f"/caps/part-{i}.pcap", Path(path).read_bytes())
    urls = analyzer.dask.expand("memory://caps/part-*.pcap")
    assert urls == [f"memory:///caps/part-{i}.pcap" for i in range(3)]
    frame = analyzer.dask.connections(urls, {}, merge=True)
    serial = _serial(files[:3], merge=True)
    pd.testing.assert_frame_equal(frame.drop(columns="file"), serial.drop(columns="file"))
    assert set(frame["file"]) <= set(urls) and frame["file"].nunique() == 3


def test_scheduler_refuses_standard_input(cluster: str) -> None:
    done = subprocess.run([sys.executable, "-m", "analyzer", "read", "--scheduler", cluster,
                           "-"], input=(CAPTURES / "echo-lo.pcap").read_bytes(),
                          capture_output=True, check=False, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr == (b"handshake: error: -: --scheduler reads files the workers can "
                           b"open, not a pipe or standard input\n")
