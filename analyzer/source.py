"""Capture sources: they only open files and yield byte chunks, nothing else.

A file may be classic pcap (either byte order, micro- or nanosecond), pcapng, or either
of those gzip-compressed. Framing and decoding happen in the engine.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast

from .errors import CaptureError

CHUNK = 4 << 20  # 4 MiB: large enough that Python's per-chunk cost is invisible

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class Chunk:
    data: bytes
    position: int  # bytes of the file on disk consumed so far (for progress)


def open_capture_file(path: str) -> tuple[BinaryIO, int]:
    """The file opened for reading and its size, or a one-line CaptureError."""
    try:
        size = os.path.getsize(path)
        return open(path, "rb"), size
    except FileNotFoundError:
        raise CaptureError(path, "no such file") from None
    except IsADirectoryError:
        raise CaptureError(path, "is a directory, not a capture file") from None
    except PermissionError:
        raise CaptureError(path, "permission denied") from None
    except OSError as exc:
        raise CaptureError(path, exc.strerror or str(exc)) from None


class FileSource:
    """Yields a capture file's (decompressed) bytes in chunks."""

    def __init__(self, path: str) -> None:
        self.path = path
        raw, self.size = open_capture_file(path)
        self._raw = raw
        head = raw.read(4)
        raw.seek(0)
        self.compressed = head[:2] == GZIP_MAGIC
        self._stream: BinaryIO = raw
        self._head = b""  # bytes already read from a gzip stream to check its magic
        if self.compressed:
            self._stream = cast(BinaryIO, gzip.GzipFile(fileobj=raw))
            try:
                head = self._head = self._stream.read(4)
            except (OSError, EOFError, zlib.error) as exc:
                raw.close()
                raise CaptureError(path, f"corrupt gzip data: {exc}") from None
        if not head:
            raw.close()
            raise CaptureError(path, "empty file, not a capture", offset=0, packet=0)
        if head not in PCAP_MAGICS and head != PCAPNG_MAGIC:
            raw.close()
            raise CaptureError(
                path, f"not a pcap or pcapng file (starts with 0x{head.hex()})", offset=0,
                packet=0)
        self.truncated_stream = False
        self.read_error: CaptureError | None = None  # reading stopped: packets before kept

    def _read(self) -> bytes:
        """The next chunk. For gzip, read1 pieces so that data decompressed before a cut
        or a bad CRC is still delivered."""
        if not self.compressed:
            return self._stream.read(CHUNK)
        parts: list[bytes] = []
        size = 0
        while size < CHUNK:
            try:
                piece = self._stream.read1(CHUNK - size)  # type: ignore[attr-defined]
            except EOFError:  # gzip stream cut off: what came before is good
                self.truncated_stream = True
                break
            except (OSError, zlib.error) as exc:
                self.read_error = CaptureError(self.path, f"gzip read error: {exc}")
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
                    raise CaptureError(self.path, f"read error: {exc}") from None
                if self._head:
                    data, self._head = self._head + data, b""
                if data:
                    yield Chunk(data, self._raw.tell())
                if not data or self.truncated_stream or self.read_error:
                    return
        finally:
            self._raw.close()


def open_source(path: str) -> FileSource:
    return FileSource(path)


def is_tty(stream: io.TextIOBase | object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
