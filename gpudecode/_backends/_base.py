"""The backend contract: what every backend (FFmpeg on the CPU, NVDEC, the raw-stream wrapper) implements in full.

A backend only turns packets into frames and converts the frames the planner keeps; it never decides what to decode
(the planner does, for every backend alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import av
import numpy as np
import torch

from gpudecode._shaping import OutputSpec
from gpudecode._targets import DecodedFrame

__all__ = ["Backend", "BackendUnsupported", "DecodedFrame"]


class BackendUnsupported(Exception):
    """A backend found, while decoding, that it cannot decode this stream at all (the message says why).

    NVDEC reports an unsupported codec, profile, size or bit depth only at the first ``Decode`` carrying a sequence
    header. The planner lets this through (unlike a damaged packet) so the decoder can switch to the CPU backend.
    """


class Backend(Protocol):
    """Turns packets into frames; converts the frames the planner keeps.

    Attributes:
        name: Which decoder produces the frames: ``"cpu"`` or ``"nvdec:N"`` (``VideoDecoder.decoding_device``).
        output_device_type: Where :meth:`convert_into` writes: ``"cpu"`` (host arrays) or ``"cuda"`` (CUDA tensors).
        skips_unwanted: Whether :meth:`decode` may leave a packet undecoded when told it is unwanted (its frame is
            then never output, so the planner must not wait for it).
    """

    name: str
    output_device_type: str
    skips_unwanted: bool

    def reset(self) -> None:
        """Drop all decoder state (called after every seek)."""

    def decode(self, packet: av.Packet, wanted: bool = True) -> Sequence[DecodedFrame]:
        """Feed one packet; return the frames that became ready, in presentation order.

        ``wanted`` is ``False`` when the packet cannot hold a requested frame: a backend that ``skips_unwanted`` may
        then skip decoding it if nothing references it (FFmpeg's ``skip_frame=NONREF``).

        Raises:
            DecodeError: The packet is damaged (the planner skips it).
            BackendUnsupported: The backend cannot decode this stream at all.
        """

    def flush(self) -> Sequence[DecodedFrame]:
        """Signal end of stream; return the remaining frames."""

    def convert(self, frame: DecodedFrame) -> torch.Tensor:
        """Convert a kept frame to a new ``(H, W, 3)`` uint8 RGB tensor (before the next ``decode``)."""

    def convert_into(self, frame: DecodedFrame, out: np.ndarray | torch.Tensor) -> None:
        """Convert a kept frame into ``out``, one ``(H, W, 3)`` uint8 slot of the output batch.

        ``out`` lives on ``output_device_type``: a NumPy array on the CPU, a CUDA tensor on the GPU. Nothing outside
        it is written.
        """

    def convert_shaped(self, frame: DecodedFrame, spec: OutputSpec, out: np.ndarray | torch.Tensor) -> None:
        """Convert a kept frame, rotated and transformed as ``spec`` says, into ``out`` (one slot of the batch).

        ``out`` is ``(spec.height, spec.width, 3)`` of ``spec.dtype`` on ``output_device_type``. Nothing outside it
        is written.
        """

    def set_threads(self, num_threads: int | None) -> bool:
        """Decode with that many threads from the next reset (``None``: the default); whether anything changed."""

    def close(self) -> None:
        """Release the decoder and conversion resources (the backend is not used again)."""
