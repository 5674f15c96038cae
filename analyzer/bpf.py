"""``handshake read -f FILTER``: tcpdump's filter syntax, compiled by libpcap.

libpcap's ``pcap_compile`` (through ctypes: the library tcpdump and ``sniff`` use, no
second process) turns the filter into a classic BPF program for each link type the
engine reads; the engine runs it on every frame before decoding it (csrc/bpf.c). So the
filter means exactly what it means to tcpdump, reading stays one pass in C (pipes too),
and packet numbers stay those of the file, as after Wireshark's display filter.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import struct
from typing import Any

from .errors import UsageError

PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
SNAPLEN = 262144
# The link types the engine decodes (csrc/decode.h LT_*) -> libpcap's DLT_* value for
# pcap_open_dead (they differ only for raw IP: LINKTYPE_RAW 101 is DLT_RAW, 12 on Linux).
LINKTYPE_DLT = {0: 0, 1: 1, 12: 12, 14: 12, 101: 12, 108: 108, 113: 113, 228: 228,
                229: 229, 276: 276}


class _Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Insn))]


@functools.cache
def _libpcap() -> Any:
    name = ctypes.util.find_library("pcap")
    for candidate in ([name] if name else []) + ["libpcap.so.1", "libpcap.so.0.8",
                                                 "libpcap.dylib"]:
        try:
            lib = ctypes.CDLL(candidate)
            break
        except OSError:
            continue
    else:
        raise UsageError("-f needs libpcap, the library tcpdump uses "
                         "(apt-get install libpcap0.8, or dnf install libpcap)")
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Program), ctypes.c_char_p,
                                 ctypes.c_int, ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    return lib


def _compile_one(lib: Any, expression: str, dlt: int) -> bytes | str:
    """The program as the engine's BpfInsn array (host byte order), or libpcap's error."""
    handle = lib.pcap_open_dead(dlt, SNAPLEN)
    if not handle:
        return f"libpcap cannot open link type {dlt}"
    try:
        prog = _Program()
        if lib.pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1,
                            PCAP_NETMASK_UNKNOWN) < 0:
            return str(lib.pcap_geterr(handle).decode(errors="replace"))
        try:
            return b"".join(struct.pack("=HBBI", i.code, i.jt, i.jf, i.k)
                            for i in prog.bf_insns[:prog.bf_len])
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(handle)


@functools.lru_cache(maxsize=32)
def compile_filter(expression: str) -> dict[int, bytes]:
    """``{linktype: program}`` for every link type the filter applies to (``ether host``
    does not apply to raw IP, for instance: such frames never match). A filter libpcap
    rejects for every link type is a UsageError with libpcap's message."""
    lib = _libpcap()
    programs: dict[int, bytes] = {}
    errors: list[str] = []
    for linktype, dlt in LINKTYPE_DLT.items():
        result = _compile_one(lib, expression, dlt)
        if isinstance(result, bytes):
            programs[linktype] = result
        else:
            errors.append(result)
    if not programs:
        raise UsageError(f"bad filter {expression!r}: {errors[0]}")
    return programs
