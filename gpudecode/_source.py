"""Normalizing the many things a user may pass as a video source."""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from gpudecode._errors import InvalidArgumentError, InvalidArgumentTypeError, SourceNotFoundError

__all__ = ["Source", "make_source"]

_SOURCE_TYPES = (
    "str or pathlib.Path, bytes, bytearray, memoryview, a 1-D torch.uint8 tensor on the CPU, "
    "or a seekable binary file object"
)


class _Reader(io.RawIOBase):
    """A read-only, seekable file with a position of its own; subclasses read at it and know their size."""

    def __init__(self) -> None:
        super().__init__()
        self._pos = 0

    def _size(self) -> int:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size() + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._pos


class BufferReader(_Reader):
    """A read-only, seekable file over a memory buffer that never copies the whole buffer."""

    def __init__(self, buffer: memoryview) -> None:
        super().__init__()
        self._buf = buffer

    def _size(self) -> int:
        return len(self._buf)

    def read(self, size: int | None = -1) -> bytes:
        n = len(self._buf)
        end = n if size is None or size < 0 else min(n, self._pos + size)
        start = min(self._pos, n)
        self._pos = max(end, self._pos)  # past the end, a read returns b"" and leaves the position (as files do)
        return self._buf[start:end].tobytes()


class FileView(_Reader):
    """A read-only view of the user's seekable file object with a position of its own.

    Every reader of a file-object source (each PyAV container, gpudecode's own MP4 parsing) reads through its own
    view: a reader moving the file's position cannot move another's, which FFmpeg's buffered reader would not notice
    (its next read would come from wherever the other left the file). Closing a view leaves the file open.
    """

    def __init__(self, file: BinaryIO) -> None:
        super().__init__()
        self._file = file

    def _size(self) -> int:
        end = _end_of(self._file)
        if end is None:
            raise OSError("the file object reports no size: seek(0, 2) and tell() return no position")
        return end

    def read(self, size: int | None = -1) -> bytes:
        self._file.seek(self._pos, io.SEEK_SET)
        data = self._file.read(-1 if size is None else size)
        self._pos += len(data)
        return data


def _end_of(file: Any) -> int | None:
    """Seek ``file`` to its end and return its size: what ``seek`` returns, else what ``tell`` does, else ``None``.

    Some wrappers return nothing (or something else) from ``seek``.
    """
    end = file.seek(0, io.SEEK_END)
    if not isinstance(end, int) and callable(getattr(file, "tell", None)):
        end = file.tell()
    return end if isinstance(end, int) else None


@dataclass
class Source:
    """A video source the decoder can open (and re-open) on demand.

    Attributes:
        description: Short human-readable name for error messages.
        path: File system path, for path sources; ``None`` otherwise.
        buffer: The bytes, for in-memory sources; ``None`` otherwise.
        file: The user's file object, for file-object sources; ``None`` otherwise.
        size_bytes: Total size in bytes, or ``None`` when unknown.
    """

    description: str
    path: str | None = None
    buffer: memoryview | None = None
    file: BinaryIO | None = None
    size_bytes: int | None = None

    def open_for_av(self) -> str | BinaryIO:
        """Return what ``av.open`` should read: a path, or a seekable file object at offset 0."""
        if self.path is not None:
            return self.path
        return self.open_reader()

    def open_reader(self) -> BinaryIO:
        """Return a binary file object over the source, positioned at 0, with a position of its own.

        For path sources the caller must close it; closing the others leaves the user's buffer or file open.
        """
        if self.path is not None:
            return open(self.path, "rb")
        if self.buffer is not None:
            return BufferReader(self.buffer)  # type: ignore[return-value]
        assert self.file is not None
        return FileView(self.file)  # type: ignore[return-value]

    @contextlib.contextmanager
    def reader(self) -> Iterator[BinaryIO]:
        """:meth:`open_reader` as a context manager that closes it when done (never the user's file)."""
        f = self.open_reader()
        try:
            yield f
        finally:
            f.close()


def _tensor_buffer(source: Any) -> memoryview:
    import torch

    if source.dtype != torch.uint8 or source.dim() != 1:
        raise InvalidArgumentError(
            f"Invalid source tensor (dtype {source.dtype}, {source.dim()} dimensions). "
            "A tensor source must be 1-D with dtype torch.uint8."
        )
    if source.device.type != "cpu":
        raise InvalidArgumentError(
            f"Invalid source tensor device ({source.device}). A tensor source must be on the CPU."
        )
    return memoryview(source.contiguous().numpy()).cast("B")


_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")  # http://, https://, rtsp://, s3:// ...


def make_source(source: Any) -> Source:
    """Normalize a user's ``source`` argument into a :class:`Source`.

    Raises:
        SourceNotFoundError: A path that does not exist.
        InvalidArgumentError: An unsupported type, an empty buffer, or a file object that cannot seek or read.
    """
    if isinstance(source, (str, Path)):
        path = os.fspath(source)
        if isinstance(source, str) and _URL.match(path):
            raise InvalidArgumentError(
                f"Invalid source ({path!r}): URLs are not supported. Download the file first and pass its path, "
                "its bytes, or an open binary file object (gpudecode reads file objects on demand)."
            )
        if not os.path.exists(path):
            raise SourceNotFoundError(f"No such file: {path!r}. Pass the path of an existing video file.")
        if os.path.isdir(path):
            raise InvalidArgumentError(f"Invalid source ({path!r}) is a directory. Pass a video file.")
        return Source(description=repr(path), path=path, size_bytes=os.path.getsize(path))
    if isinstance(source, (bytes, bytearray, memoryview)):
        buf = memoryview(source).cast("B") if isinstance(source, memoryview) else memoryview(source)
        if buf.nbytes == 0:
            raise InvalidArgumentError("Invalid source (empty buffer). Pass the bytes of a video file.")
        return Source(description=f"<{type(source).__name__} of {buf.nbytes} bytes>", buffer=buf, size_bytes=buf.nbytes)
    if type(source).__module__.startswith("torch") and hasattr(source, "dtype"):
        buf = _tensor_buffer(source)
        if buf.nbytes == 0:
            raise InvalidArgumentError("Invalid source (empty tensor). Pass the bytes of a video file.")
        return Source(description=f"<tensor of {buf.nbytes} bytes>", buffer=buf, size_bytes=buf.nbytes)
    if hasattr(source, "read"):
        seekable = getattr(source, "seekable", None)
        try:
            can_seek = bool(seekable()) if callable(seekable) else hasattr(source, "seek")
        except (OSError, ValueError) as exc:
            raise InvalidArgumentError(f"Invalid source file object: {exc}. Pass an open, seekable file.") from exc
        if not can_seek:
            raise InvalidArgumentError(
                "Invalid source (file object is not seekable). Pass a seekable binary file object, "
                "or read the stream into bytes first."
            )
        try:
            size = _end_of(source)  # torchcodec's calls: seek(offset, whence), read(size)
            source.seek(0, io.SEEK_SET)
            probe = source.read(0)
        except (OSError, ValueError) as exc:
            raise InvalidArgumentError(f"Invalid source file object: {exc}. Pass an open, seekable file.") from exc
        if isinstance(probe, str):
            raise InvalidArgumentTypeError("Invalid source (text-mode file object). Open the file in binary mode 'rb'.")
        if size is None:
            raise InvalidArgumentError(
                "Invalid source file object: seek(0, 2) returns no position and tell() gives none either, so its "
                "size is unknown. Pass a seekable binary file object whose seek or tell returns the position."
            )
        return Source(
            description=f"<file object {getattr(source, 'name', type(source).__name__)!s}>",
            file=source,
            size_bytes=size,
        )
    raise InvalidArgumentTypeError(
        f"Invalid source type ({type(source).__name__}). Supported sources are: {_SOURCE_TYPES}."
    )
