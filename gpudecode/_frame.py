"""Frame containers returned by the decoder and the samplers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from gpudecode._errors import InvalidArgumentError

__all__ = ["Frame", "FrameBatch"]


def _describe(obj: Frame | FrameBatch) -> str:
    """The printout torchcodec uses: the data's shape (not its values), then the times."""
    return (
        f"{type(obj).__name__}:\n  data (shape): {obj.data.shape}\n  pts_seconds: {obj.pts_seconds}\n"
        f"  duration_seconds: {obj.duration_seconds}\n"
    )


@dataclass
class Frame:
    """One decoded frame.

    Attributes:
        data: ``uint8`` RGB image, ``(3, H, W)`` (``dimension_order="NCHW"``) or ``(H, W, 3)`` (``"NHWC"``), on the
            decoder's device.
        pts_seconds: Presentation time of the frame, in seconds.
        duration_seconds: How long the frame is shown, in seconds.
    """

    data: torch.Tensor
    pts_seconds: float
    duration_seconds: float

    def __post_init__(self) -> None:
        """Validate as torchcodec's ``Frame`` does: 3-D data; times stored as Python floats.

        Raises:
            InvalidArgumentError: ``data`` is not 3-dimensional.
        """
        if self.data.ndim != 3:
            raise InvalidArgumentError(f"Frame data must be 3-dimensional, got shape {tuple(self.data.shape)}.")
        self.pts_seconds = float(self.pts_seconds)
        self.duration_seconds = float(self.duration_seconds)

    def __repr__(self) -> str:
        """The data's shape and the times, as torchcodec prints a frame."""
        return _describe(self)

    def __iter__(self) -> Iterator[torch.Tensor | float]:
        """Unpack as ``data, pts_seconds, duration_seconds``."""
        yield self.data
        yield self.pts_seconds
        yield self.duration_seconds


@dataclass
class FrameBatch:
    """Several decoded frames, batched.

    Attributes:
        data: ``uint8`` RGB frames with leading batch dimensions: ``(N, 3, H, W)`` or ``(N, H, W, 3)`` for access
            calls, ``(num_clips, num_frames_per_clip, ...)`` for the samplers.
        pts_seconds: ``float64`` presentation times, shaped like the leading dimensions of ``data``.
        duration_seconds: ``float64`` durations, shaped like ``pts_seconds``.
    """

    data: torch.Tensor
    pts_seconds: torch.Tensor
    duration_seconds: torch.Tensor

    def __post_init__(self) -> None:
        """Validate as torchcodec's ``FrameBatch`` does: at least 3-D data whose leading dimensions are the times'.

        Raises:
            InvalidArgumentError: ``data`` has fewer than 3 dimensions, or the times' shape is not its leading shape.
        """
        if self.data.ndim < 3:
            raise InvalidArgumentError(
                f"FrameBatch data must be at least 3-dimensional, got shape {tuple(self.data.shape)}."
            )
        lead = tuple(self.data.shape[:-3])
        if not (lead == tuple(self.pts_seconds.shape) == tuple(self.duration_seconds.shape)):
            raise InvalidArgumentError(
                f"FrameBatch times must have the data's leading shape {lead}; got pts_seconds "
                f"{tuple(self.pts_seconds.shape)} and duration_seconds {tuple(self.duration_seconds.shape)}."
            )

    def __repr__(self) -> str:
        """The data's shape and the times, as torchcodec prints a batch."""
        return _describe(self)

    def __len__(self) -> int:
        """Number of entries along the first dimension."""
        return int(self.data.shape[0])

    def __getitem__(self, key: int | slice | torch.Tensor) -> FrameBatch:
        """Index the leading dimension; always a :class:`FrameBatch`, as in torchcodec.

        ``batch[0]`` of an ``(N, 3, H, W)`` batch is a batch with ``(3, H, W)`` data and 0-d times.

        Raises:
            IndexError: ``key`` is out of range (torch's own error).
        """
        return FrameBatch(
            data=self.data[key], pts_seconds=self.pts_seconds[key], duration_seconds=self.duration_seconds[key]
        )

    def __iter__(self) -> Iterator[FrameBatch]:
        """Iterate over the leading dimension, as torchcodec does: one :class:`FrameBatch` per entry."""
        for i in range(len(self)):
            yield self[i]
