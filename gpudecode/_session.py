"""The decoding machinery of one decoder: opened on first use, it runs requests into batches.

``VideoDecoder`` turns access calls into :class:`DecodeRequest` objects; a :class:`DecodeSession` opens the
container and builds the pipeline (demuxer, backend, planner) when first needed, runs each request under one lock
(on worker threads where keyframe runs are independent), retries what a backend could not do, and writes the frames
into the returned batch. It also owns the decoder's life across ``close`` and ``fork``.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from av.container import InputContainer

from gpudecode._backends._base import BackendUnsupported
from gpudecode._container import open_container
from gpudecode._device import CpuFallbackStatus
from gpudecode._errors import DecodeError, InvalidArgumentError, MediaError
from gpudecode._frame import FrameBatch
from gpudecode._output import BatchWriter
from gpudecode._parallel import Emit, ParallelDecode
from gpudecode._pipeline import Pipeline
from gpudecode._planner import PlanStats
from gpudecode._seek_mode import DecodeRequest
from gpudecode._shaping import OutputSpec
from gpudecode._source import Source
from gpudecode._stream import StreamState

__all__ = ["DecodeSession", "usable_cpus"]


# Objects inherited across a fork: kept referenced so their finalizers never run in the child.
_FORK_ORPHANS: list[Any] = []


class DecodeSession:
    """Opens, runs and closes the decoding parts of one decoder (thread-safe: one request at a time).

    Args:
        source: The decoder's source.
        state: The stream's facts, metadata and seek mode.
        device: Where frames are returned.
        num_threads: The decoder's ``num_threads`` argument (``None``: FFmpeg chooses, and up to one parallel run
            per usable CPU).
        spec: The returned frames' shape and dtype.
        cache_dir: The index cache directory, named when a cached index no longer matches the file.

    Attributes:
        pipe: The container, demuxer, backend and planner (once :attr:`opened`).
        opened: Whether the pipeline exists in this process.
        closed: Whether :meth:`close` was called.
        num_threads: Most keyframe runs decoded at once.
        pid: The process the pipeline belongs to.
    """

    def __init__(
        self,
        source: Source,
        state: StreamState,
        device: torch.device,
        num_threads: int | None,
        spec: OutputSpec,
        cache_dir: str | None,
    ) -> None:
        self._source, self._state, self._device, self._spec = source, state, device, spec
        self._threads_arg = num_threads
        self._cache_dir = cache_dir
        self.num_threads = num_threads if num_threads is not None else usable_cpus()
        self.lock = threading.RLock()
        self.pid = os.getpid()
        self.opened = False
        self.closed = False
        self.pipe: Pipeline
        self.parallel = ParallelDecode(
            source, state.stream_index, state.mode, state.timeline, state.seek_margin, self.num_threads
        )

    # -- opening -----------------------------------------------------------------------------------------
    def open_with(self, container: InputContainer) -> None:
        """Create the demuxer, the backend and the planner over an open container."""
        self.pipe = Pipeline(self._source, self._state, self._device, self._threads_arg, container)
        self.opened = True

    def ensure_open(self) -> None:
        """Open the file on first use (decoders served from the index cache start without it).

        Raises:
            MediaError: The file no longer matches the cached index it was described by.
        """
        if self.opened:
            return
        container = open_container(self._source)
        try:
            stream = container.streams[self._state.stream_index]
            facts = self._state.facts
            cc = stream.codec_context
            if cc is None or cc.width != facts["width"] or cc.height != facts["height"]:
                raise MediaError(
                    f"{self._source.description} no longer matches its cached index. Clear the index cache "
                    f"({self._cache_dir}) or rebuild the index."
                )
            self.open_with(container)
        except BaseException:
            container.close()
            raise

    def _open_locked(self) -> None:
        if not self.opened:
            with self.lock:
                self.ensure_open()

    def check_open(self) -> None:
        """Raise unless the decoder is open.

        Raises:
            InvalidArgumentError: The decoder was closed.
        """
        if self.closed:
            raise InvalidArgumentError("Invalid operation on a closed VideoDecoder. Create a new decoder.")

    # -- what the pipeline reports ----------------------------------------------------------------------
    def fallback(self) -> CpuFallbackStatus:
        """Whether and why frames for a CUDA device are decoded on the CPU (opens a lazily opened decoder)."""
        if not self.opened and self._device.type == "cpu":
            return CpuFallbackStatus()  # known without opening a lazily opened (cached) CPU decoder
        self._open_locked()
        return self.pipe.fallback

    def decoding_device(self) -> str:
        """``"cpu"`` (FFmpeg) or ``"nvdec:N"``."""
        if not self.opened and self._device.type == "cpu":
            return "cpu"
        self._open_locked()
        return self.pipe.backend.name

    def stats(self) -> PlanStats:
        """Counters of the last decode call."""
        return self.pipe.planner.stats if self.opened else PlanStats()

    # -- running requests --------------------------------------------------------------------------------
    def decode(self, request: DecodeRequest, dimension_order: str) -> FrameBatch:
        """Decode a request's targets, each once, into its output slots."""
        run = functools.partial(self._run_planned, request.targets, request.start_keys)
        return self.assemble(run, request, dimension_order)

    def assemble(self, run: Callable[[Emit], list[int]], request: DecodeRequest, dimension_order: str) -> FrameBatch:
        """Let ``run(emit)`` decode into a new batch for ``request``; then rotate and order its dimensions.

        ``run`` calls ``emit(j, frame, pts, duration)`` for target ``j`` and returns the targets it could not produce.

        Raises:
            InvalidArgumentError: The decoder was closed.
            DecodeError: Frames could not be decoded (damaged or missing data).
        """
        m = self._state.metadata
        with self.lock:
            self.check_open()
            if self.pid != os.getpid():
                self._after_fork()
            self.ensure_open()
            writer = BatchWriter(
                request.count,
                m.coded_height,
                m.coded_width,
                self._device,
                request.positions,
                self.pipe.backend,
                self._spec,
            )
            missing = self._run_with_retries(run, writer)
        if missing:
            lost = [int(request.labels[j]) for j in missing[:10]]
            raise DecodeError(
                f"Could not decode frame(s) {lost}{' ...' if len(missing) > 10 else ''}: the data "
                "is damaged or missing. Other frames remain available."
            )
        st = self._state
        return writer.finish(st.time_base, st.quarter_turns, dimension_order, request.pts, request.durations)

    def _run_with_retries(self, run: Callable[[Emit], list[int]], writer: BatchWriter) -> list[int]:
        """Run; again on the CPU when NVDEC refuses the stream, again with one thread when frames were lost."""
        pipe = self.pipe
        pipe.planner.stats = PlanStats()
        try:
            missing = run(writer.emit)
        except BackendUnsupported as exc:  # NVDEC refused the stream at its first Decode: the CPU takes over
            pipe.switch_to_cpu(str(exc))
            writer.backend = pipe.backend
            writer.forget_last()
            missing = run(writer.emit)
        if missing and pipe.backend.set_threads(1):
            # Frame threads lose the frames in flight when a damaged packet's error surfaces late: once more with
            # one thread, which decodes everything decodable; then back to the configured threads.
            pipe.planner.invalidate()
            writer.forget_last()
            try:
                again = run(writer.emit)
            finally:
                pipe.backend.set_threads(self._threads_arg)
                pipe.planner.invalidate()
            # What either run decoded is in the batch: a rerun that reads less (its source failing meanwhile) keeps
            # the first run's frames.
            missing = sorted(set(missing) & set(again))
        return missing

    def _run_planned(self, targets: np.ndarray, start_keys: np.ndarray | None, emit: Emit) -> list[int]:
        """Run the planner; independent keyframe runs are spread over worker threads on the CPU backend."""
        if self._parallel_ok():
            return self.parallel.run(self.pipe.planner, targets, start_keys, emit)
        return self.pipe.planner.run(targets, start_keys, emit)

    def _parallel_ok(self) -> bool:
        return (
            self.pipe.backend.name == "cpu"
            and self.num_threads > 1
            and self._source.file is None
            and not self.pipe.demuxer.raw
        )

    # -- life --------------------------------------------------------------------------------------------
    def _after_fork(self) -> None:
        """In a forked child: re-open the file and rebuild the decoder; never reuse the parent's state.

        The parent's container shares its file offset with the child, and its CUDA/NVDEC objects are invalid in
        the child, so both are dropped (not closed: closing them could touch the parent's resources).
        """
        self.pid = os.getpid()
        if self.opened:  # else nothing was inherited
            _FORK_ORPHANS.extend([*self.pipe.inherited(), *self.parallel.orphan()])
            self.opened = False  # the caller's ensure_open() builds everything afresh in this process

    def close(self) -> None:
        """Release the container, the decoder and the worker threads (only abandoned in a forked child)."""
        if self.closed:
            return
        self.closed = True
        if not self.opened:
            return
        if self.pid != os.getpid():
            _FORK_ORPHANS.extend([*self.pipe.inherited(), *self.parallel.orphan()])
            return
        with self.lock:
            try:
                self.parallel.close()
            finally:
                self.pipe.close()


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, as a pinned DataLoader worker has), not the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1
