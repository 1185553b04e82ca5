"""Output assembly: the batch a request's frames are converted into, then rotated and put in dimension order."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from gpudecode._backends._base import Backend
from gpudecode._errors import DecodeError
from gpudecode._frame import FrameBatch
from gpudecode._index import to_seconds
from gpudecode._memory import new_frames
from gpudecode._shaping import OutputSpec, shape_tensor
from gpudecode._targets import DecodedFrame

__all__ = ["BatchWriter", "empty_batch"]


def _size_error(width: int, height: int, out: torch.Tensor, coded: tuple[int, int] | None = None) -> DecodeError:
    sh, sw = coded if coded is not None else (out.shape[1], out.shape[2])
    return DecodeError(
        f"A decoded frame is {width}x{height}, but the stream is {sw}x{sh}; resolution changes are not supported."
    )


class BatchWriter:
    """Receives each decoded frame once and writes it into every output slot that asked for it.

    A plain ``spec`` (whole uint8 frames) writes frames at the coded size and rotates the batch in :meth:`finish`;
    any other has each frame shaped (rotated, transformed, converted to its dtype) as it is written.

    Args:
        count: Output slots.
        height: Coded frame height.
        width: Coded frame width.
        device: Where the batch lives.
        positions: For each planner target ``j``, the slots that receive its frame.
        backend: The backend whose frames :meth:`emit` receives unless told otherwise.
        spec: The returned frames (``None``: plain, unrotated).
    """

    def __init__(
        self,
        count: int,
        height: int,
        width: int,
        device: torch.device,
        positions: list[np.ndarray],
        backend: Backend,
        spec: OutputSpec | None = None,
    ) -> None:
        self.spec = spec if spec is not None and not spec.plain else None
        self.coded = (height, width)
        if self.spec is None:
            self.out = new_frames((count, height, width, 3), device)
        else:
            self.out = new_frames((count, self.spec.height, self.spec.width, 3), device, self.spec.dtype)
        self._out_np = self.out.numpy() if self.out.device.type == "cpu" else None
        self.pts = np.zeros(count, dtype=np.int64)
        self.durations = np.zeros(count, dtype=np.int64)
        self.positions = positions
        self.backend = backend
        self._last: DecodedFrame | torch.Tensor | None = None
        self._last_slot = -1

    def forget_last(self) -> None:
        """Forget the last frame written (a rerun's frames are new objects, possibly reusing the old ones' ids)."""
        self._last, self._last_slot = None, -1

    def emit(
        self, j: int, frame: DecodedFrame | torch.Tensor, pts: int, dur: int, backend: Backend | None = None
    ) -> None:
        """Write target ``j``'s frame (a backend frame, or an already converted ``(H, W, 3)`` tensor).

        Raises:
            DecodeError: The frame's size is not the stream's.
        """
        pos = self.positions[j]
        first = int(pos[0])
        out = self.out
        backend = backend or self.backend
        if self._last is frame and self._last_slot >= 0:
            out[first].copy_(out[self._last_slot])  # approximate mode: the same frame for another target
        elif self.spec is not None:
            self._write_shaped(first, frame, backend)
        elif isinstance(frame, torch.Tensor) or self._out_np is None or backend.output_device_type != "cpu":
            self._write_device(first, frame, backend)
        else:
            if frame.width != out.shape[2] or frame.height != out.shape[1]:
                raise _size_error(frame.width, frame.height, out)
            backend.convert_into(frame, self._out_np[first])
        self._last, self._last_slot = frame, first
        for p in pos[1:]:
            out[int(p)].copy_(out[first])
        self.pts[pos] = pts
        self.durations[pos] = dur

    def _write_shaped(self, slot: int, frame: DecodedFrame | torch.Tensor, backend: Backend) -> None:
        spec = self.spec
        assert spec is not None
        if isinstance(frame, torch.Tensor):
            if tuple(frame.shape[:2]) != self.coded:
                raise _size_error(frame.shape[1], frame.shape[0], self.out, self.coded)
            self.out[slot].copy_(shape_tensor(frame, spec), non_blocking=True)
            return
        if backend.output_device_type != "cpu":  # a device surface: the backend checks its size
            backend.convert_shaped(frame, spec, self.out[slot])
            return
        if (frame.height, frame.width) != self.coded:
            raise _size_error(frame.width, frame.height, self.out, self.coded)
        if self._out_np is not None:
            backend.convert_shaped(frame, spec, self._out_np[slot])
            return
        host = torch.empty(tuple(self.out.shape[1:]), dtype=spec.dtype)  # CPU frames for a device batch
        backend.convert_shaped(frame, spec, host.numpy())
        self.out[slot].copy_(host)

    def _write_device(self, slot: int, frame: DecodedFrame | torch.Tensor, backend: Backend) -> None:
        out = self.out
        if not isinstance(frame, torch.Tensor) and self._out_np is None and backend.output_device_type == "cuda":
            backend.convert_into(frame, out[slot])  # straight into the batch, on the device
            return
        rgb = frame if isinstance(frame, torch.Tensor) else backend.convert(frame)
        if rgb.shape[0] != out.shape[1] or rgb.shape[1] != out.shape[2]:
            raise _size_error(rgb.shape[1], rgb.shape[0], out)
        out[slot].copy_(rgb, non_blocking=True)

    def finish(
        self,
        time_base: Fraction,
        rot_k: int,
        dimension_order: str,
        pts: np.ndarray | None = None,
        durations: np.ndarray | None = None,
    ) -> FrameBatch:
        """The batch, rotated ``rot_k`` quarter turns and in ``dimension_order``.

        ``pts``/``durations`` (time-base units) replace the decoder's where the seek mode knows them exactly.
        """
        data = self.out
        if rot_k and self.spec is None:
            data = torch.rot90(data, rot_k, dims=(1, 2)).contiguous()
        if dimension_order == "NCHW":
            data = data.permute(0, 3, 1, 2)
        return FrameBatch(
            data=data,
            pts_seconds=torch.from_numpy(to_seconds(self.pts if pts is None else pts, time_base)),
            duration_seconds=torch.from_numpy(
                to_seconds(self.durations if durations is None else durations, time_base)
            ),
        )


def empty_batch(
    height: int, width: int, dimension_order: str, device: torch.device, dtype: torch.dtype = torch.uint8
) -> FrameBatch:
    """A batch of no frames with the shape a batch of frames of this (returned) size has."""
    shape = (0, 3, height, width) if dimension_order == "NCHW" else (0, height, width, 3)
    return FrameBatch(
        data=torch.empty(shape, dtype=dtype, device=device),
        pts_seconds=torch.empty(0, dtype=torch.float64),
        duration_seconds=torch.empty(0, dtype=torch.float64),
    )
