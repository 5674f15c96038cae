"""The notebooks in notebooks/ run from top to bottom in a real Jupyter kernel (nbclient),
and analyzer.sniff() inside a kernel stops cleanly when the cell is interrupted."""

from __future__ import annotations

import os
import queue
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CELL_TIMEOUT = 120  # a hang fails the test instead of blocking CI; speed is not measured here
CAN_CAPTURE = os.geteuid() == 0 and shutil.which("tcpdump") is not None


def run_notebook(path: Path) -> Any:
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def outputs_of(nb: Any, kind: str) -> list[Any]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.get("output_type") == kind]


def test_notebooks_are_committed_without_outputs() -> None:
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["01-handshake-basics.ipynb", "02-many-connections.ipynb", "03-live.ipynb"]
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


@pytest.mark.parametrize("name", ["01-handshake-basics.ipynb", "02-many-connections.ipynb"])
def test_notebook_runs(name: str) -> None:
    nb = run_notebook(NOTEBOOKS / name)
    assert outputs_of(nb, "error") == []
    rich = [o["data"] for o in outputs_of(nb, "execute_result") + outputs_of(nb, "display_data")]
    # The Capture and Connection reprs are HTML with inline SVG; plain figures are PNG.
    assert any("<svg" in d.get("text/html", "") for d in rich)
    assert any("image/png" in d for d in rich)


@pytest.mark.root
@pytest.mark.skipif(not CAN_CAPTURE, reason="live capture needs root and tcpdump")
def test_live_notebook_runs_as_root() -> None:
    nb = run_notebook(NOTEBOOKS / "03-live.ipynb")
    assert outputs_of(nb, "error") == []
    printed = "".join(o["text"] for o in outputs_of(nb, "stream"))
    assert "live capture possible: True" in printed
    html = "".join(o["data"].get("text/html", "") for o in outputs_of(nb, "display_data"))
    assert "live capture on lo" in html and "finished" in html


SNIFF_UNTIL_INTERRUPTED = """
import socket, threading, time, analyzer
lsock = socket.create_server(("127.0.0.1", 0))
PORT = lsock.getsockname()[1]
def serve():
    conn, _ = lsock.accept()
    with conn:
        conn.sendall(conn.recv(16))
def client():
    with socket.create_connection(("127.0.0.1", PORT)) as s:
        s.sendall(b"ping"); s.recv(16)
threading.Thread(target=serve, daemon=True).start()
cap = analyzer.sniff("lo", port=PORT, refresh=0.2,
                     on_start=threading.Thread(target=client, daemon=True).start)
print("returned", len(cap))
"""


@pytest.mark.root
@pytest.mark.skipif(not CAN_CAPTURE, reason="live capture needs root and tcpdump")
def test_interrupting_the_cell_stops_sniff_cleanly() -> None:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        msg_id = kc.execute(SNIFF_UNTIL_INTERRUPTED)
        # Wait until the live display has been redrawn after the client's connection.
        deadline = time.monotonic() + 30
        seen_capturing = False
        messages = []
        while time.monotonic() < deadline and not seen_capturing:
            try:
                msg = kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            messages.append((msg["msg_type"], str(msg["content"])[-300:]))
            html = msg["content"].get("data", {}).get("text/html", "")
            seen_capturing = "capturing" in html and "1 TCP connection," in html
        assert seen_capturing, f"the live display never showed the connection: {messages}"
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=30)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=30)
        assert reply["content"]["status"] == "ok"  # the interrupt ended sniff, not the cell
        printed: list[str] = []
        check = kc.execute_interactive(
            "import os, subprocess, threading\n"
            "rec = next(cap.records())\n"
            "live = any(t.name == 'handshake-live' for t in threading.enumerate())\n"
            "children = subprocess.run(['pgrep', '-P', str(os.getpid())],"
            " capture_output=True, text=True).stdout.split()\n"
            "print(len(cap), rec['handshake']['complete'], live, children)",
            timeout=30, output_hook=lambda m: printed.append(m["content"].get("text", "")))
        assert check["content"]["status"] == "ok"
        # One connection, its handshake seen; no capture thread and no tcpdump left.
        assert "".join(printed).strip() == "1 True False []"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

