"""Errors a user meets when starting a live capture, each one line with the fix."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError

SYS_NET = Path("/sys/class/net")


class CaptureStartError(UsageError):
    """The capture could not start (privileges, interface, filter)."""


class PrivilegeError(CaptureStartError):
    """No root and no CAP_NET_RAW: say what is missing and how to get it."""

    def __init__(self, tool: str, detail: str = "") -> None:
        fixes = "run it with sudo"
        if tool == "dumpcap":
            fixes += (", or add yourself to the wireshark group "
                      "(sudo usermod -aG wireshark $USER, then log in again)")
        elif tool == "tcpdump":
            fixes += ", or give tcpdump the capability: sudo setcap cap_net_raw,cap_net_admin=eip " \
                     "$(command -v tcpdump)"
        else:
            fixes += ", or give the Python interpreter cap_net_raw with setcap"
        why = f" ({detail})" if detail else ""
        super().__init__(f"live capture needs root or CAP_NET_RAW{why}: {fixes}")


def interfaces() -> list[str]:
    """The interfaces this network namespace has, by name."""
    try:
        return sorted(p.name for p in SYS_NET.iterdir())
    except OSError:
        return []


def check_interface(iface: str) -> None:
    """Unknown interfaces are refused up front, with the list of real ones."""
    if iface == "any":
        return
    known = interfaces()
    if known and iface not in known:
        raise CaptureStartError(f"no interface {iface!r}; available: any, {', '.join(known)}")


def has_net_raw() -> bool:
    """Whether this process may open packet sockets (root or CAP_NET_RAW, bit 13)."""
    if os.geteuid() == 0 and _effective_caps() is None:
        return True
    caps = _effective_caps()
    return caps is not None and bool(caps >> 13 & 1)


def _effective_caps() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return None
