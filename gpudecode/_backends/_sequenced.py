"""Frame numbering for raw elementary streams, whose packets and frames carry no timestamps.

Decoding always starts at the stream's first packet (the demuxer restarts instead of seeking), so the ``m``-th
picture the decoder outputs after a reset is frame ``m`` in display order; this wrapper gives it the timestamp the
index gave that frame (``m`` frame durations), which is also what FFmpeg's CLI assigns. It never lets the decoder
skip a picture, since a skipped picture would shift the numbering.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gpudecode._backends._base import Backend

__all__ = ["SequencedFrames"]


class SequencedFrames:
    """Wraps a CPU backend: numbers its output frames ``0, 1, 2, ...`` from each reset, in frame durations."""

    def __init__(self, inner: Backend, frame_duration: int) -> None:
        self._inner = inner
        self._duration = int(frame_duration)
        self._next = 0
        self.name = inner.name
        self.output_device_type = inner.output_device_type
        self.skips_unwanted = False

    def _stamp(self, frames: Sequence[Any]) -> Sequence[Any]:
        for f in frames:
            f.pts = self._next * self._duration
            f.duration = self._duration
            self._next += 1
        return frames

    def reset(self) -> None:
        """Drop decoder state; the next output frame is frame 0 again (the demuxer restarts with it)."""
        self._inner.reset()
        self._next = 0

    def decode(self, packet: Any, wanted: bool = True) -> Sequence[Any]:
        """Decode one packet (every picture, wanted or not) and number the frames it outputs."""
        return self._stamp(self._inner.decode(packet, True))

    def flush(self) -> Sequence[Any]:
        """Drain the decoder and number what it returns."""
        return self._stamp(self._inner.flush())

    def convert(self, frame: Any) -> torch.Tensor:
        """Convert like the wrapped backend."""
        return self._inner.convert(frame)

    def convert_into(self, frame: Any, out: np.ndarray) -> None:
        """Convert like the wrapped backend."""
        self._inner.convert_into(frame, out)

    def convert_shaped(self, frame: Any, spec: Any, out: Any) -> None:
        """Convert and shape like the wrapped backend."""
        self._inner.convert_shaped(frame, spec, out)

    def set_threads(self, num_threads: int | None) -> bool:
        """Set the wrapped backend's decoding threads (see ``CpuBackend.set_threads``)."""
        return bool(self._inner.set_threads(num_threads))

    def close(self) -> None:
        """Close the wrapped backend."""
        self._inner.close()
