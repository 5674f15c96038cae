"""Every error the package raises on purpose, in one place.

The CLI turns a :class:`HandshakeError` into one line on stderr and exit status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class HandshakeError(Exception):
    """Base class: a problem the user can act on, described in one line."""


class CaptureError(HandshakeError):
    """A capture file that cannot be read (missing, not a capture, corrupt).

    ``offset`` is the byte offset in the (decompressed) file and ``packet`` the number of
    packets read before the problem, when they are known.
    """

    def __init__(self, path: str, message: str, *, offset: int | None = None,
                 packet: int | None = None) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.offset = offset
        self.packet = packet

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled whole (worker processes, Dask workers send it back), keywords included.
        return (_capture_error, (self.path, self.message, self.offset, self.packet))


def _capture_error(path: str, message: str, offset: int | None, packet: int | None
                   ) -> CaptureError:
    return CaptureError(path, message, offset=offset, packet=packet)


class UsageError(HandshakeError):
    """A command-line request that cannot be carried out (e.g. an unknown connection id)."""
