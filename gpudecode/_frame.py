"""Frame containers returned by the decoder and the samplers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = ["Frame", "FrameBatch"]


def _describe(obj: Frame | FrameBatch) -> str:
    """The printout torchcodec uses: the data's shape (not its values), then the times."""
    return (f"{type(obj).__name__}:\n  data (shape): {obj.data.shape}\n  pts_seconds: {obj.pts_seconds}\n"
            f"  duration_seconds: {obj.duration_seconds}\n")


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

    def __repr__(self) -> str:
        """The data's shape and the times, as torchcodec prints a batch."""
        return _describe(self)

    def __len__(self) -> int:
        """Number of entries along the first dimension."""
        return int(self.data.shape[0])

    def __getitem__(self, key: int | slice | torch.Tensor) -> Frame | FrameBatch:
        """Index the leading dimension: an int gives a :class:`Frame` for 1-level batches, else a batch."""
        data = self.data[key]
        pts = self.pts_seconds[key]
        dur = self.duration_seconds[key]
        if pts.dim() == 0:
            return Frame(data=data, pts_seconds=float(pts), duration_seconds=float(dur))
        return FrameBatch(data=data, pts_seconds=pts, duration_seconds=dur)

    def __iter__(self) -> Iterator[Frame | FrameBatch]:
        """Iterate over the leading dimension."""
        for i in range(len(self)):
            yield self[i]
