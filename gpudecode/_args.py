"""One argument checker for every public entry point: the decoder, the samplers, the data module and the CLI.

The same values are accepted everywhere: Python and NumPy integers and 0-d integer tensors where one integer is
wanted; Python and NumPy numbers and 0-d tensors where seconds are wanted; sequences, 1-D arrays and 1-D tensors
(integer, or floating point holding whole numbers, as torchcodec accepts) where several are wanted. Errors use the
one template ``Invalid NAME (VALUE). Supported values are: ...``: a value of the wrong type raises
:class:`InvalidArgumentTypeError` (also a ``TypeError``), a value out of range :class:`InvalidArgumentError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gpudecode._errors import GpudecodeError, InvalidArgumentError, InvalidArgumentTypeError, invalid_choice

__all__ = [
    "DIMENSION_ORDERS",
    "SEEK_MODES",
    "DecoderArguments",
    "IntLike",
    "SecondsLike",
    "as_fps",
    "as_int",
    "as_seconds",
    "decoder_arguments",
    "float_array",
    "int_array",
]

IntLike = int | np.integer | torch.Tensor  # one integer, as as_int accepts it
SecondsLike = float | int | np.floating | np.integer | torch.Tensor  # a time, as as_seconds accepts it

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return (
        isinstance(value, torch.Tensor)
        and value.dim() == 0
        and not value.is_floating_point()
        and value.dtype != torch.bool
    )


def as_int(
    value: Any, name: str, minimum: int | None = None, range_error: type[GpudecodeError] = InvalidArgumentError
) -> int:
    """One integer.

    Args:
        value: A Python or NumPy integer, or a 0-d integer tensor (not a bool).
        name: The argument's name, for the message.
        minimum: The smallest value allowed, if any.
        range_error: The class raised for a value outside ``minimum..`` or outside 64 bits.

    Returns:
        The value as a Python ``int``.

    Raises:
        InvalidArgumentTypeError: Not an integer.
        InvalidArgumentError: Below ``minimum`` or beyond 64 bits (``range_error``).
    """
    if not _is_int(value):
        allowed = "integers" if minimum is None else f"integers >= {minimum}"
        raise InvalidArgumentTypeError(f"Invalid {name} ({value!r}). Supported values are: {allowed}.")
    v = int(value.item()) if isinstance(value, torch.Tensor) else int(value)
    if not _INT64_MIN <= v <= _INT64_MAX or (minimum is not None and v < minimum):
        allowed = "64-bit integers" if minimum is None else f"integers >= {minimum}"
        raise range_error(f"Invalid {name} ({v}). Supported values are: {allowed}.")
    return v


def as_seconds(value: Any, name: str, range_error: type[GpudecodeError] = InvalidArgumentError) -> float:
    """A finite number of seconds: a Python or NumPy number or a 0-d tensor (not a bool).

    Raises:
        InvalidArgumentTypeError: Not a number.
        InvalidArgumentError: NaN or infinite (``range_error``).
    """
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidArgumentTypeError(f"Invalid {name} ({value!r}). Supported values are: finite numbers of seconds.")
    t = float(value)
    if not math.isfinite(t):
        raise range_error(f"Invalid {name} ({t}). Supported values are: finite numbers of seconds.")
    return t


def as_fps(value: Any) -> float:
    """A frame rate: a finite number > 0.

    Raises:
        InvalidArgumentTypeError: Not a number.
        InvalidArgumentError: Not finite, or not above 0.
    """
    numeric = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if not numeric:
        raise InvalidArgumentTypeError(f"Invalid fps ({value!r}). Supported values are: finite numbers > 0.")
    rate = float(value)
    if not (math.isfinite(rate) and rate > 0):
        raise InvalidArgumentError(f"Invalid fps ({value!r}). Supported values are: finite numbers > 0.")
    return rate


def _whole_numbers(arr: np.ndarray, name: str, shown: str) -> np.ndarray:
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and not (np.all(np.isfinite(arr)) and np.all(arr == np.floor(arr))):
            bad = arr[~(np.isfinite(arr) & (arr == np.floor(arr)))][0]
            raise InvalidArgumentError(f"Invalid {name} ({bad}) in {shown}. Supported values are: whole numbers.")
        if arr.size and (arr.min() < _INT64_MIN or arr.max() > _INT64_MAX):
            raise InvalidArgumentError(f"Invalid {name} in {shown}. Supported values are: 64-bit integers.")
        return arr.astype(np.int64)
    raise InvalidArgumentTypeError(f"Invalid {name} ({shown}). Supported values are: a 1-D sequence of integers.")


def int_array(values: Any, name: str, range_error: type[GpudecodeError] = InvalidArgumentError) -> np.ndarray:
    """Several integers as a 1-D int64 array.

    Args:
        values: A sequence of integers (as :func:`as_int` accepts them), or a 1-D array or tensor of integers or of
            floating-point whole numbers.
        name: The argument's name, for the message.
        range_error: The class raised for a value beyond 64 bits.

    Raises:
        InvalidArgumentTypeError: Not a sequence, or an element is not an integer.
        InvalidArgumentError: More than one dimension, or a floating-point value that is not a whole number.
    """
    if isinstance(values, (torch.Tensor, np.ndarray)):
        arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
        shown = f"{type(values).__name__} of {arr.dtype}, {arr.ndim}-D"
        if arr.ndim > 1:
            raise InvalidArgumentError(f"Invalid {name} ({shown}). Supported values are: a 1-D sequence of integers.")
        return _whole_numbers(arr.reshape(-1), name, shown)
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise InvalidArgumentTypeError(f"Invalid {name} ({values!r}). Supported values are: a sequence of integers.")
    return np.array([as_int(v, name, range_error=range_error) for v in values], dtype=np.int64)


def float_array(values: Any, name: str, range_error: type[GpudecodeError] = InvalidArgumentError) -> np.ndarray:
    """Several finite numbers of seconds as a 1-D float64 array (a sequence, a 1-D array or tensor).

    Raises:
        InvalidArgumentTypeError: Not a sequence of numbers.
        InvalidArgumentError: More than one dimension, or a value that is not finite (``range_error``).
    """
    if isinstance(values, (torch.Tensor, np.ndarray)):
        arr = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else values
        if arr.ndim > 1:
            raise InvalidArgumentError(
                f"Invalid {name} ({arr.ndim}-D). Supported values are: a 1-D sequence of seconds."
            )
        try:
            arr = arr.astype(np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentTypeError(
                f"Invalid {name} (array of {arr.dtype}). Supported values are: a sequence of seconds."
            ) from exc
    elif isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise InvalidArgumentTypeError(f"Invalid {name} ({values!r}). Supported values are: a sequence of seconds.")
    else:
        arr = np.array([as_seconds(v, name, range_error) for v in values], dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise range_error(f"Invalid {name} ({arr[bad][0]}). Supported values are: finite numbers of seconds.")
    return arr


SEEK_MODES = ("exact", "approximate")
DIMENSION_ORDERS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class DecoderArguments:
    """``VideoDecoder``'s checked arguments.

    Attributes:
        stream_index: The stream asked for, or ``None`` for the best video stream.
        num_threads: Decoding threads, or ``None`` to let FFmpeg choose.
        seek_mode: ``"exact"`` or ``"approximate"``.
        dimension_order: ``"NCHW"`` or ``"NHWC"``.
    """

    stream_index: int | None
    num_threads: int | None
    seek_mode: str
    dimension_order: str


def decoder_arguments(
    *,
    stream_index: Any,
    dimension_order: Any,
    num_threads: Any,
    seek_mode: Any,
    index: Any,
    num_ffmpeg_threads: Any,
    transforms: Any,
    output_dtype: Any,
    custom_frame_mappings: Any,
) -> DecoderArguments:
    """Check ``VideoDecoder``'s arguments (torchcodec's too, where they mean something here).

    ``transforms`` are checked when the decoder knows its frame size (:func:`gpudecode._shaping.output_spec`).

    Raises:
        InvalidArgumentTypeError: A count or index that is not an integer.
        InvalidArgumentError: Any other invalid value, or a torchcodec argument gpudecode does not support.
    """
    if num_ffmpeg_threads is not None:
        num_ffmpeg_threads = as_int(num_ffmpeg_threads, "num_ffmpeg_threads", minimum=0)
        if num_threads is not None and num_threads != num_ffmpeg_threads:
            raise InvalidArgumentError(
                f"Invalid num_ffmpeg_threads ({num_ffmpeg_threads!r}) with num_threads "
                f"({num_threads!r}). They are the same setting; pass one of them."
            )
        num_threads = num_ffmpeg_threads
    if (
        output_dtype is not torch.uint8
        and output_dtype is not torch.float32
        and not (isinstance(output_dtype, str) and output_dtype == "auto")
    ):
        raise InvalidArgumentError(
            f"Invalid output_dtype ({output_dtype!r}). Supported values are: torch.uint8, torch.float32, 'auto'."
        )
    if custom_frame_mappings is not None:
        raise InvalidArgumentError(
            "Invalid custom_frame_mappings. They are not supported; save an index with "
            "VideoDecoder.save_index() and pass it as index=."
        )
    if seek_mode not in SEEK_MODES:
        raise invalid_choice("seek_mode", seek_mode, SEEK_MODES)
    if dimension_order not in DIMENSION_ORDERS:
        raise invalid_choice("dimension_order", dimension_order, DIMENSION_ORDERS)
    if index is not None and seek_mode != "exact":
        raise InvalidArgumentError(
            "Invalid index with seek_mode='approximate'. An index file is only used with seek_mode='exact'."
        )
    return DecoderArguments(
        stream_index=None if stream_index is None else as_int(stream_index, "stream_index", minimum=0),
        num_threads=None if num_threads is None else as_int(num_threads, "num_threads", minimum=0),
        seek_mode=seek_mode,
        dimension_order=dimension_order,
    )
