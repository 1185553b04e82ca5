"""gpudecode's exception classes.

Every error raised by gpudecode derives from :class:`GpudecodeError` and also from the builtin exception a
Python user would catch for that kind of mistake, so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "DecodeError",
    "FrameIndexError",
    "GpudecodeError",
    "InvalidArgumentError",
    "MediaError",
    "SourceNotFoundError",
    "CudaUnavailableError",
    "WorkerCrashError",
]


class GpudecodeError(Exception):
    """Base class of every error gpudecode raises."""


class InvalidArgumentError(GpudecodeError, ValueError):
    """An argument has a wrong type or value (also: a time outside the stream, a NaN time)."""


class FrameIndexError(GpudecodeError, IndexError):
    """A frame index is outside ``[-num_frames, num_frames)``."""


class MediaError(GpudecodeError, ValueError):
    """The source is not decodable media: not a media file, no video stream, damaged data."""


class SourceNotFoundError(GpudecodeError, FileNotFoundError):
    """A source path does not exist."""


class DecodeError(GpudecodeError, RuntimeError):
    """The decoder failed on data it accepted (for example, a frame lies in a damaged part of the file)."""


class CudaUnavailableError(GpudecodeError, RuntimeError):
    """Frames were requested on a CUDA device, but neither NVDEC nor torch's CUDA can deliver them there."""


class WorkerCrashError(GpudecodeError, RuntimeError):
    """Data-loading workers kept crashing: more lost batches than allowed, or deaths without progress."""


def invalid_choice(name: str, value: object, allowed: Iterable[object]) -> InvalidArgumentError:
    """Return the standard error for an argument outside a fixed set of values.

    Produces ``Invalid seek_mode ('fast'). Supported values are: exact, approximate.``
    """
    allowed_text = ", ".join(str(a) for a in allowed)
    return InvalidArgumentError(f"Invalid {name} ({value!r}). Supported values are: {allowed_text}.")
