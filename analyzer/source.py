"""Capture sources: they only open files and yield byte chunks, nothing else.

A file may be classic pcap (either byte order, micro- or nanosecond), pcapng, or either
of those gzip-compressed. Framing and decoding happen in the engine.

Input need not be seekable: ``-`` is standard input (as ``tcpdump -r -``), and a pipe,
``/dev/stdin``, ``<(zcat f.gz)`` or a named pipe is read as a stream, gzip detected from
its first bytes. Such an input is also copied, as it is read, to a temporary file (a
:class:`Spool`) so that what needs the file twice (the packet table, ``show``, plots and the
report) reads the copy; the copy goes when the last Capture using it does. A streamed
read (analyzer.stream) reads its input once and makes no copy.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
import tempfile
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast

from .errors import CaptureError

CHUNK = 4 << 20  # 4 MiB: large enough that Python's per-chunk cost is invisible

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"
STDIN = "-"


@dataclass
class Chunk:
    data: bytes
    position: int  # bytes of the file on disk consumed so far (for progress)


class Spool:
    """A temporary copy of a non-seekable input, removed when this object goes."""

    def __init__(self) -> None:
        fd, self.path = tempfile.mkstemp(prefix="handshake-", suffix=".spool")
        self.file: BinaryIO = os.fdopen(fd, "wb")
        weakref.finalize(self, _remove, self.path)

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def close(self) -> None:
        self.file.close()


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def open_capture_file(path: str) -> tuple[BinaryIO, int]:
    """The file opened for reading and its size (0 for a pipe), or a one-line
    CaptureError. ``-`` is standard input."""
    try:
        if path == STDIN:
            raw = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
        else:
            raw = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by FileSource)
        info = os.fstat(raw.fileno())
    except FileNotFoundError:
        raise CaptureError(path, "no such file") from None
    except IsADirectoryError:
        raise CaptureError(path, "is a directory, not a capture file") from None
    except PermissionError:
        raise CaptureError(path, "permission denied") from None
    except (OSError, ValueError) as exc:  # ValueError: no standard input at all
        raise CaptureError(path, getattr(exc, "strerror", None) or str(exc)) from None
    if stat.S_ISDIR(info.st_mode):
        raw.close()
        raise CaptureError(path, "is a directory, not a capture file")
    size = info.st_size if stat.S_ISREG(info.st_mode) else 0
    return cast(BinaryIO, raw), size


class _Stream(io.RawIOBase):
    """The raw input read front to back, never seeked: the bytes already read to check
    the magic come first, every byte read is counted (``position``) and copied to the
    spool when there is one."""

    def __init__(self, raw: BinaryIO, head: bytes, spool: Spool | None) -> None:
        self._raw, self._head, self._spool = raw, head, spool
        self.position = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """``size`` bytes straight from the file (RawIOBase.read would go through
        readinto: a buffer and two more copies of every byte, a fifth of a jsonl read)."""
        if self._head or size < 0:
            return super().read(size) or b""
        data = self._raw.read(size)
        if self._spool is not None and data:
            self._spool.write(data)
        self.position += len(data)
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            data, self._head = self._head[:len(buffer)], self._head[len(buffer):]
        else:
            data = self._raw.read(len(buffer))
            if self._spool is not None and data:
                self._spool.write(data)
        n = len(data)
        buffer[:n] = data
        self.position += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _read_head(raw: BinaryIO, want: int) -> bytes:
    """Up to ``want`` bytes: a pipe may deliver fewer per read."""
    parts: list[bytes] = []
    got = 0
    while got < want:
        piece = raw.read(want - got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


class FileSource:
    """Yields a capture file's (decompressed) bytes in chunks."""

    def __init__(self, path: str, spool: bool = True) -> None:
        self.path = path
        self.chunk_size = CHUNK  # smaller when many files are read at once (merge.py)
        raw, self.size = open_capture_file(path)
        try:
            seekable = path != STDIN and raw.seekable()
            self.spool = None if seekable or not spool else Spool()
            head = _read_head(raw, 4)
        except OSError as exc:
            raw.close()
            raise CaptureError(path, f"read error: {exc.strerror or exc}") from None
        if self.spool is not None:
            self.spool.write(head)
        self._raw = _Stream(raw, head, self.spool)
        self.compressed = head[:2] == GZIP_MAGIC
        self._stream: BinaryIO = cast(BinaryIO, self._raw)
        self._head = b""  # bytes already read from a gzip stream to check its magic
        self.delivered = 0  # (decompressed) bytes handed out so far
        if self.compressed:
            self._stream = cast(BinaryIO, gzip.GzipFile(fileobj=self._raw, mode="rb"))
            try:
                head = self._head = _read_head(self._stream, 4)
            except (OSError, EOFError, zlib.error) as exc:
                self.close()
                raise CaptureError(path, f"corrupt gzip data: {exc} at byte 0 (compressed "
                                         f"byte {self._raw.position} or before)", offset=0,
                                   packet=0) from None
        if not head:
            self.close()
            raise CaptureError(path, "empty file, not a capture", offset=0, packet=0)
        if head not in PCAP_MAGICS and head != PCAPNG_MAGIC:
            self.close()
            raise CaptureError(
                path, f"not a pcap or pcapng file (starts with 0x{head.hex()})", offset=0,
                packet=0)
        self.truncated_stream = False
        self.read_error: str | None = None  # reading stopped: packets before kept

    def _read(self) -> bytes:
        """The next chunk. For gzip, read1 pieces so that data decompressed before a cut
        or a bad CRC is still delivered."""
        if not self.compressed:
            return _read_head(self._stream, self.chunk_size)
        parts: list[bytes] = []
        size = 0
        while size < self.chunk_size:
            try:
                piece = self._stream.read1(self.chunk_size - size)  # type: ignore[attr-defined]
            except EOFError:  # gzip stream cut off: what came before is good
                self.truncated_stream = True
                break
            except (OSError, zlib.error) as exc:
                # The offset of the bad byte in the compressed file is not known exactly
                # (zlib reads ahead); the decompressed offset is, and is the one packet
                # offsets use.
                self.read_error = (f"gzip read error: {exc} (compressed byte "
                                   f"{self._raw.position} or before)")
                break
            if not piece:
                break
            parts.append(piece)
            size += len(piece)
        return b"".join(parts)

    def chunks(self) -> Iterator[Chunk]:
        try:
            while True:
                try:
                    data = self._read()
                except OSError as exc:
                    raise CaptureError(self.path, f"read error: {exc.strerror or exc} at "
                                                  f"byte {self.delivered}",
                                       offset=self.delivered) from None
                if self._head:
                    data, self._head = self._head + data, b""
                if data:
                    self.delivered += len(data)
                    yield Chunk(data, self._raw.position)
                if not data or self.truncated_stream or self.read_error:
                    return
        finally:
            self.close()

    def close(self) -> None:
        self._stream.close()
        self._raw.close()
        if self.spool is not None:
            self.spool.close()


def spool_if_stream(path: str) -> Spool | None:
    """For a reader that needs a real file (tshark): a copy of a non-seekable input (read
    to its end now), or None when ``path`` is a file already."""
    raw, _ = open_capture_file(path)
    with raw:
        if path != STDIN and raw.seekable():
            return None
        spool = Spool()
        try:
            while data := raw.read(CHUNK):
                spool.write(data)
        except OSError as exc:
            raise CaptureError(path, f"read error: {exc.strerror or exc}") from None
        finally:
            spool.close()
    return spool


def open_source(path: str, spool: bool = True) -> FileSource:
    """``spool``: copy a non-seekable input to a temporary file as it is read (to read
    it again later)."""
    return FileSource(path, spool)


def is_tty(stream: io.TextIOBase | object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
