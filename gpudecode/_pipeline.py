"""The open decoding parts of one decoder: demuxer, backend (with its fallback status) and planner."""

from __future__ import annotations

from typing import Any

import torch

from gpudecode._backends._base import Backend
from gpudecode._container import PyAVDemuxer
from gpudecode._device import CpuFallbackStatus, cpu_backend_instead, select_backend, select_raw_stream_backend
from gpudecode._planner import Planner
from gpudecode._source import Source
from gpudecode._stream import StreamState

__all__ = ["Pipeline"]


class Pipeline:
    """Demuxer, backend and planner over one open container.

    Args:
        source: The decoder's source.
        state: The stream's state (its seek mode gives the planner's targets).
        device: Where frames are wanted (chooses the backend).
        num_threads: The decoder's ``num_threads`` argument (``None``: FFmpeg chooses).
        container: The open container; the pipeline owns it from here.

    Raises:
        CudaUnavailableError: Frames are wanted on a CUDA device that neither NVDEC nor torch can deliver to.
    """

    def __init__(
        self, source: Source, state: StreamState, device: torch.device, num_threads: int | None, container: Any
    ) -> None:
        self.device = device
        self.num_threads = num_threads
        self.demuxer = PyAVDemuxer(source, state.stream_index, container=container, timeline=state.timeline)
        self.backend: Backend
        self.fallback: CpuFallbackStatus
        if self.demuxer.raw:
            # approximate mode refuses raw streams (their header counts nothing): an index is at hand
            assert state.mode.index is not None
            self.backend, self.fallback = select_raw_stream_backend(
                device, self.demuxer.stream, num_threads, int(state.mode.index.duration[0])
            )
        else:
            self.backend, self.fallback = select_backend(
                device, self.demuxer.stream, num_threads, state.bit_depth, state.color
            )
        self.planner = Planner(
            demuxer=self.demuxer,
            backend=self.backend,
            targets=state.mode.planner_targets(self.demuxer, state.seek_margin),
            nominal_duration=state.nominal_duration,
        )

    def use_backend(self, backend: Backend) -> None:
        """Decode with ``backend`` from now on (the planner forgets its position)."""
        self.backend = self.planner.backend = backend
        self.planner.invalidate()

    def switch_to_cpu(self, reason: str) -> None:
        """Replace the NVDEC backend by the CPU one for good, saying why (once per reason).

        Raises:
            CudaUnavailableError: torch cannot put CPU frames on the device either.
        """
        self.backend.close()
        backend, self.fallback = cpu_backend_instead(self.device, self.demuxer.stream, self.num_threads, reason)
        self.use_backend(backend)

    def close(self) -> None:
        """Release the packet iterator, the container and the backend's resources."""
        try:
            self.planner.invalidate()
            self.demuxer.close()
        finally:
            self.backend.close()

    def inherited(self) -> list[Any]:
        """In a forked child: the objects to keep referenced and never close (they belong to the parent)."""
        return [self.planner, self.demuxer, self.backend]
