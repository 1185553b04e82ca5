"""gpudecode's exception classes.

Every error raised by gpudecode derives from :class:`GpudecodeError` and also from the builtin exception a
Python user would catch for that kind of mistake, so ``except ValueError`` keeps working. Where torchcodec raises a
different builtin for the same call, the class inherits that one too, so code written for torchcodec catches it:
``TypeError`` for a source or frame key of the wrong type, ``RuntimeError`` for a file that cannot be opened or an
unknown device, ``IndexError`` for a time outside the stream.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AllocationError",
    "DecodeError",
    "ffmpeg_reason",
    "invalid_choice",
    "InvalidArgumentTypeError",
    "InvalidDeviceError",
    "TimeOutOfRangeError",
    "TransformSizeError",
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


class InvalidArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument has a type gpudecode cannot use.

    For example a source that is not a path, buffer or file, or a frame key that is not an integer or slice. Also a
    ``TypeError``, as torchcodec raises there.
    """


class InvalidDeviceError(InvalidArgumentError, RuntimeError):
    """``device`` names no CPU or CUDA device. Also a ``RuntimeError``, as torchcodec raises there."""


class TimeOutOfRangeError(InvalidArgumentError, IndexError, RuntimeError):
    """A time is outside the stream (before its first frame, at or after its end) or not finite.

    Also an ``IndexError`` (torchcodec's ``get_frame_played_at``) and a ``RuntimeError`` (torchcodec's
    ``get_frames_played_at``).
    """


class TransformSizeError(InvalidArgumentError, RuntimeError):
    """A decode-time crop is larger than the frames reaching it.

    Also a ``RuntimeError``, as torchcodec raises for a ``CenterCrop`` (and a ``ValueError``, as for a ``RandomCrop``).
    """


class FrameIndexError(GpudecodeError, IndexError):
    """A frame index is outside ``[-num_frames, num_frames)``."""


class MediaError(GpudecodeError, ValueError, RuntimeError):
    """The source is not decodable media: not a media file, no video stream, damaged data.

    Also a ``RuntimeError``, as torchcodec raises for a source it cannot open.
    """


class SourceNotFoundError(GpudecodeError, FileNotFoundError, RuntimeError):
    """A source path does not exist. Also a ``RuntimeError``, as torchcodec raises there."""


class AllocationError(GpudecodeError, MemoryError, RuntimeError):
    """The frames asked for do not fit in memory.

    For example every frame of a stream whose header claims millions of frames. Also a ``RuntimeError``, as torch
    raises when an allocation fails.
    """


class DecodeError(GpudecodeError, RuntimeError):
    """The decoder failed on data it accepted (for example, a frame lies in a damaged part of the file)."""


class CudaUnavailableError(GpudecodeError, RuntimeError):
    """Frames were requested on a CUDA device, but neither NVDEC nor torch's CUDA can deliver them there."""


class WorkerCrashError(GpudecodeError, RuntimeError):
    """Data-loading workers kept crashing: more lost batches than allowed, or deaths without progress."""


def ffmpeg_reason(exc: BaseException) -> str:
    """What an FFmpeg (PyAV) error says, without its error number or the file name PyAV repeats.

    ``[Errno 1094995529] Invalid data found when processing input: '<none>'`` becomes
    ``Invalid data found when processing input``; other exceptions are returned as ``str(exc)``.
    """
    text = getattr(exc, "strerror", None)
    return str(text) if text else str(exc)


def invalid_choice(name: str, value: object, allowed: Iterable[object]) -> InvalidArgumentError:
    """Return the standard error for an argument outside a fixed set of values.

    Produces ``Invalid seek_mode ('fast'). Supported values are: exact, approximate.``
    """
    allowed_text = ", ".join(str(a) for a in allowed)
    return InvalidArgumentError(f"Invalid {name} ({value!r}). Supported values are: {allowed_text}.")
