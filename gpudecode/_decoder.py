"""The VideoDecoder: torchcodec's API as a thin façade over the decoding parts.

Data flow (``docs/architecture.md``): the source is opened by PyAV (``_container``), its exact index comes from
``_index_store`` (or the header, in approximate mode); the seek mode (``_seek_mode``), chosen once when the decoder
opens, turns each access call into a decode request; the session (``_session``) runs it: the planner (``_planner``)
feeds the demuxer's packets to a backend (``_device`` picks CPU or NVDEC), ``_output`` writes the converted frames
into the returned batch, and ``_parallel`` spreads independent keyframe runs over worker threads on the CPU.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from av.container import InputContainer

from gpudecode._args import as_fps, as_int, as_seconds, decoder_arguments, float_array, int_array
from gpudecode._container import open_container, pick_stream, stream_facts
from gpudecode._device import (
    CpuFallbackStatus,
    parse_device,
)
from gpudecode._errors import (
    FrameIndexError,
    InvalidArgumentError,
    MediaError,
    TimeOutOfRangeError,
)
from gpudecode._frame import Frame, FrameBatch
from gpudecode._index import FrameIndex
from gpudecode._index_store import IndexStore, cache_dir_default
from gpudecode._metadata import VideoStreamMetadata
from gpudecode._output import empty_batch
from gpudecode._parallel import Emit
from gpudecode._planner import PlanStats
from gpudecode._seek_mode import DecodeRequest, SeekMode
from gpudecode._session import DecodeSession
from gpudecode._shaping import output_spec
from gpudecode._source import Source, make_source
from gpudecode._stream import stream_state

__all__ = ["VideoDecoder"]

logger = logging.getLogger("gpudecode")


class VideoDecoder:
    """Decode frames of one video stream into uint8 RGB torch tensors, on the CPU or with NVDEC on a GPU.

    The API follows ``torchcodec.decoders.VideoDecoder``: index it like a sequence of frames, or ask for frames
    by index or by presentation time. Frame ``i`` is the ``i``-th frame in presentation order.

    Args:
        source: A path (``str``/``Path``), the file's bytes (``bytes``, ``bytearray``, ``memoryview``, or a 1-D
            ``torch.uint8`` CPU tensor), or a seekable binary file object (read on demand).
        stream_index: The video stream to decode; ``None`` picks the best video stream.
        dimension_order: ``"NCHW"`` (default) or ``"NHWC"`` for the returned frames.
        num_threads: CPU decoding threads. ``None`` (default) lets FFmpeg choose (the CPUs this process may use,
            + 1 frame threads) and decodes independent keyframe runs of one request on up to one thread per such
            CPU (the affinity mask, so a pinned DataLoader worker does not oversubscribe); ``1`` uses a single
            thread; ``N`` uses ``N`` frame threads and up to ``N`` parallel runs.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``; frames land there.
        seek_mode: ``"exact"`` scans the stream once (no decoding) into an exact frame index; ``"approximate"``
            trusts the header (faster to open, frame ``i`` is assumed at ``begin + i / fps``).
        index: Path of an index file written by :meth:`save_index`, used instead of building one (exact mode).
        num_ffmpeg_threads: torchcodec's name for ``num_threads`` (either may be given, not both differently).
        transforms: Decode-time transforms applied, in order, to every returned frame (after the rotation):
            :mod:`gpudecode.transforms` ``Resize``, ``CenterCrop``, ``RandomCrop``, or the matching
            ``torchvision.transforms.v2`` objects (as torchcodec accepts them). Returned frames then have the last
            transform's size; :attr:`metadata` keeps describing the stream.
        output_dtype: ``torch.uint8`` (default), ``torch.float32`` (RGB in ``[0, 1]`` from 16-bit RGB, so 10/12-bit
            streams keep their precision), or ``"auto"`` (float32 for streams of more than 8 bits, else uint8).
        custom_frame_mappings: Not supported; pass a saved index with ``index=`` instead.
        index_cache_dir: Where exact indexes are cached by content (gpudecode's own): a later decoder of the same
            file opens from the cache without scanning. ``None``: ``$GPUDECODE_INDEX_CACHE`` if set, else no cache.

    Raises:
        SourceNotFoundError: The path does not exist.
        InvalidArgumentError: An argument is invalid.
        MediaError: The source is not a media file, has no video stream, or cannot be indexed.
        CudaUnavailableError: A CUDA device was requested but frames cannot be delivered there.
    """

    def __init__(
        self,
        source: str | Path | bytes | bytearray | memoryview | torch.Tensor | Any,
        *,
        stream_index: int | None = None,
        dimension_order: str = "NCHW",
        num_threads: int | None = None,
        device: str | torch.device | None = "cpu",
        seek_mode: str = "exact",
        index: str | os.PathLike[str] | None = None,
        num_ffmpeg_threads: int | None = None,
        transforms: Sequence[Any] | None = None,
        output_dtype: Any = torch.uint8,
        custom_frame_mappings: Any = None,
        index_cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._closed = True
        args = decoder_arguments(
            stream_index=stream_index,
            dimension_order=dimension_order,
            num_threads=num_threads,
            seek_mode=seek_mode,
            index=index,
            num_ffmpeg_threads=num_ffmpeg_threads,
            transforms=transforms,
            output_dtype=output_dtype,
            custom_frame_mappings=custom_frame_mappings,
        )
        stream_index, num_threads = args.stream_index, args.num_threads
        self._device = parse_device(device)
        self._seek_mode = args.seek_mode
        self._dimension_order = args.dimension_order
        self._shaping_args = (transforms, output_dtype)  # resolved against the frame size in _setup
        self._source: Source = make_source(source)
        self._store = IndexStore(self._source, cache_dir_default(index_cache_dir))
        if self._init_from_cache(stream_index, num_threads, index):
            self._closed = False
            return
        container = open_container(self._source)
        try:
            self._init(container, stream_index, num_threads, index)
        except BaseException:
            container.close()
            raise
        self._closed = False

    # -- construction ------------------------------------------------------------------------------------
    def _init(
        self,
        container: InputContainer,
        stream_index: int | None,
        num_threads: int | None,
        index_path: str | os.PathLike[str] | None,
    ) -> None:
        stream = pick_stream(container, stream_index)
        facts = stream_facts(container, stream)
        exact = self._seek_mode == "exact"  # the one place the mode is decided: an index, or the header alone
        self._store.read_mp4(tables=exact)  # approximate mode needs no sample tables, only the rotation
        index = None
        if exact:
            tb = Fraction(*facts["time_base"])
            index = self._store.index_for(container, stream, index_path, tb, facts, best=stream_index is None)
        self._setup(facts, index, num_threads)
        self._session.open_with(container)

    def _init_from_cache(
        self, stream_index: int | None, num_threads: int | None, index_path: str | os.PathLike[str] | None
    ) -> bool:
        """Serve an exact decoder from the index cache without opening the file (CPU decoders only).

        The cache key is the file's content, and the entry holds the stream facts the metadata derives from, so
        the container is opened on first use instead (``av.open`` of a long MP4 parses every sample's tables).
        """
        if self._seek_mode != "exact" or index_path is not None or self._device.type != "cpu":
            return False
        idx = self._store.cached(stream_index)
        if idx is None:
            return False
        try:
            self._setup(idx.facts, idx, num_threads)
        except MediaError:
            raise
        except (KeyError, TypeError, ValueError) as exc:  # facts from another gpudecode version, or tampered
            logger.warning("gpudecode: ignoring a cached index with unusable stream facts: %r", exc)
            return False
        return True

    def _setup(self, facts: dict[str, Any], index: FrameIndex | None, num_threads: int | None) -> None:
        """Everything that needs only the stream facts (not an open container); chooses the seek mode."""
        st = self._state = stream_state(facts, index, self._store.mp4)
        self._mode: SeekMode = st.mode
        self._metadata = st.metadata
        m = st.metadata
        self._spec = output_spec(*self._shaping_args, m.height, m.width, st.bit_depth, st.quarter_turns)
        self._stream_index = st.stream_index
        self._session = DecodeSession(self._source, st, self._device, num_threads, self._spec, self._store.cache_dir)

    # -- properties --------------------------------------------------------------------------------------
    @property
    def metadata(self) -> VideoStreamMetadata:
        """The stream's :class:`VideoStreamMetadata`."""
        return self._metadata

    @property
    def device(self) -> torch.device:
        """The device frames are returned on."""
        return self._device

    @property
    def stream_index(self) -> int:
        """The index of the stream this decoder decodes (torchcodec's attribute)."""
        return self._stream_index

    @property
    def seek_mode(self) -> str:
        """``"exact"`` or ``"approximate"``."""
        return self._seek_mode

    @property
    def cpu_fallback(self) -> CpuFallbackStatus:
        """Whether and why frames for a CUDA device are decoded on the CPU (torchcodec's status object).

        Falsy when they are not (or the device is the CPU); ``str()`` reads like torchcodec's, with our reason.
        """
        return self._session.fallback()

    @property
    def decoding_device(self) -> str:
        """Which decoder produces the frames: ``"cpu"`` (FFmpeg) or ``"nvdec:N"``."""
        return self._session.decoding_device()

    @property
    def stats(self) -> PlanStats:
        """Counters of the last decode call (seeks, packets fed, frames decoded and converted)."""
        return self._session.stats()

    def __len__(self) -> int:
        """Number of frames (``metadata.num_frames``)."""
        return self._metadata.num_frames

    def __repr__(self) -> str:
        m = self._metadata
        return (
            f"VideoDecoder({self._source.description}, {m.codec} {m.width}x{m.height}, {m.num_frames} frames, "
            f"device={self._device}, seek_mode={self._seek_mode!r})"
        )

    # -- lifetime ----------------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the file, the container and the decoder. Further calls raise."""
        if self._closed:
            return
        self._closed = True
        self._session.close()

    def __enter__(self) -> VideoDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def _check_open(self) -> None:
        self._session.check_open()

    # -- arguments to frames -----------------------------------------------------------------------------
    def _normalize_indices(self, indices: np.ndarray) -> np.ndarray:
        n = len(self)
        bad = (indices < -n) | (indices >= n)
        if bad.any():
            raise FrameIndexError(
                f"Invalid frame index ({int(indices[bad][0])}). The video has {n} frames; "
                f"supported indices are -{n}..{n - 1}."
            )
        return np.where(indices < 0, indices + n, indices)

    def _check_times(self, t: np.ndarray, name: str) -> None:
        m = self._metadata
        begin, end = m.begin_stream_seconds, m.end_stream_seconds
        bad = (t < begin) if end is None else (t < begin) | (t >= end)
        if bad.any():
            x = float(t[bad][0])
            raise TimeOutOfRangeError(
                f"Invalid {name} ({x}). Supported values are in [{begin}, {end}), the times the stream plays."
            )

    def _frames_at_indices(self, idx: np.ndarray) -> FrameBatch:
        idx = self._normalize_indices(idx)
        if idx.shape[0] == 0:
            return self._empty_batch()
        return self._decode(self._mode.for_indices(idx))

    def _frames_at_times(self, t: np.ndarray, name: str) -> FrameBatch:
        self._check_times(t, name)
        if t.shape[0] == 0:
            return self._empty_batch()
        return self._decode(self._mode.for_times(t))

    def _frames_in_range(self, lo: int, hi: int, step: int, owner: object | None = None) -> FrameBatch:
        """Frames ``lo, lo + step, ...`` before ``hi``.

        Approximate mode with ``step > 0`` takes decoder outputs in a row from frame ``lo``'s nominal time, so each
        frame comes once even where timestamps step back; ``owner`` (an iterator's token) continues its own
        previous sequence when nothing else decoded in between.
        """
        target = self._mode.sequence_target(lo) if step > 0 and hi > lo else None
        if target is None:
            return self._frames_at_indices(np.arange(lo, hi, step, dtype=np.int64))
        count = len(range(lo, hi, step))
        request = DecodeRequest(
            targets=np.array([target], dtype=np.int64),
            start_keys=None,
            positions=[np.array([j]) for j in range(count)],
            count=count,
            labels=np.arange(lo, hi, step),
        )

        def run(emit: Emit) -> list[int]:
            done = self._session.pipe.planner.run_sequence(target, count, step, emit, owner)
            return list(range(done, count))

        return self._session.assemble(run, request, self._dimension_order)

    def _empty_batch(self) -> FrameBatch:
        sp = self._spec
        return empty_batch(sp.height, sp.width, self._dimension_order, self._device, sp.dtype)

    def _decode(self, request: DecodeRequest) -> FrameBatch:
        return self._session.decode(request, self._dimension_order)

    # -- public access calls -----------------------------------------------------------------------------
    def __getitem__(self, key: int | slice) -> torch.Tensor:
        """``decoder[i]`` is frame ``i``'s data, ``decoder[a:b:c]`` the frames' data, as plain tensors (torchcodec).

        ``(3, H, W)`` / ``(N, 3, H, W)``, or channels last with ``dimension_order="NHWC"``. Negative indices count
        from the end. Use :meth:`get_frame_at` / :meth:`get_frames_in_range` for the times as well.

        Raises:
            FrameIndexError: ``i`` is out of range.
            InvalidArgumentTypeError: ``key`` is not an integer or a slice of integers (a ``TypeError``, as in
                torchcodec).
            InvalidArgumentError: A slice step of 0.
        """
        if isinstance(key, slice):
            parts = [None if v is None else as_int(v, "slice bound") for v in (key.start, key.stop, key.step)]
            if parts[2] == 0:
                raise InvalidArgumentError("Invalid slice step (0). Supported values are: non-zero integers.")
            lo, hi, step = slice(*parts).indices(len(self))
            return self._frames_in_range(lo, hi, step).data
        return self.get_frame_at(key).data

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Iterate over every frame's data in presentation order, as ``decoder[i]`` gives it (decoded in chunks)."""
        n = len(self)
        owner = object()
        for start in range(0, n, 32):
            yield from self._frames_in_range(start, min(n, start + 32), 1, owner).data

    def get_frame_at(self, index: int) -> Frame:
        """Return frame ``index`` (presentation order; negative counts from the end).

        Raises:
            FrameIndexError: ``index`` is out of range.
            InvalidArgumentError: ``index`` is not an integer.
            DecodeError: The frame lies in damaged data.
        """
        i = as_int(index, "frame index", range_error=FrameIndexError)
        return _single(self._frames_at_indices(np.array([i], dtype=np.int64)))

    def get_frames_at(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> FrameBatch:
        """Return the frames at ``indices``, in the order given (duplicates allowed).

        The frames are decoded in one planned pass: sorted, de-duplicated, each keyframe interval at most once.

        Raises:
            FrameIndexError: An index is out of range.
            InvalidArgumentError: ``indices`` is not a sequence of integers.
        """
        return self._frames_at_indices(int_array(indices, "frame index", range_error=FrameIndexError))

    def get_frames_in_range(self, start: int, stop: int, step: int = 1) -> FrameBatch:
        """Return frames ``start, start + step, ...`` before ``stop`` (half-open, like ``range``).

        ``start`` and ``stop`` follow slicing (and torchcodec): negative values count from the end, and values past
        either end are clamped, so ``get_frames_in_range(0, 10**6)`` returns every frame and a start past the end
        an empty batch.

        Raises:
            InvalidArgumentTypeError: A non-integer argument.
            InvalidArgumentError: ``step < 1``, or ``stop`` before ``start`` (after counting from the end).
        """
        start_i, stop_i, step_i = as_int(start, "start"), as_int(stop, "stop"), as_int(step, "step", minimum=1)
        n = len(self)
        lo, hi, _ = slice(start_i, stop_i).indices(n)
        if hi < lo:
            raise InvalidArgumentError(
                f"Invalid range: stop ({stop_i}) is before start ({start_i}) in a video of "
                f"{n} frames. Supported ranges have start <= stop."
            )
        return self._frames_in_range(lo, hi, step_i)

    def get_frame_played_at(self, seconds: float) -> Frame:
        """Return the frame shown at time ``seconds`` (its ``[pts, pts + duration)`` contains it).

        Raises:
            InvalidArgumentError: ``seconds`` is not finite or lies outside ``[begin, end)`` of the stream.
        """
        t = as_seconds(seconds, "seconds", TimeOutOfRangeError)
        return _single(self._frames_at_times(np.array([t]), "seconds"))

    def get_frames_played_at(self, seconds: Sequence[float] | np.ndarray | torch.Tensor) -> FrameBatch:
        """Return the frames shown at each of ``seconds``, in the order given.

        Raises:
            InvalidArgumentError: A time is not finite or lies outside ``[begin, end)`` of the stream.
        """
        return self._frames_at_times(float_array(seconds, "seconds", TimeOutOfRangeError), "seconds")

    def get_frames_played_in_range(
        self, start_seconds: float, stop_seconds: float, fps: float | None = None
    ) -> FrameBatch:
        """Return every frame shown during ``[start_seconds, stop_seconds)``, in presentation order.

        The first frame is the one shown at ``start_seconds`` (its pts may precede it); the last is the last
        frame whose pts is before ``stop_seconds``. ``start_seconds == stop_seconds`` gives an empty batch.

        Args:
            start_seconds: Start of the range.
            stop_seconds: End of the range (excluded).
            fps: Resample to this rate, as torchcodec does: ``n = round((stop_seconds - start_seconds) * fps)``
                frames, the ones shown at ``start_seconds + k / fps`` for ``k < n`` (source frames repeat or drop
                as needed), with those times as ``pts_seconds`` and ``1 / fps`` as every duration. ``None``: the
                source frames themselves.

        Raises:
            InvalidArgumentError: Non-finite times, ``stop_seconds < start_seconds``, times outside the stream, or
                an ``fps`` that is not a finite positive number.
        """
        t0 = as_seconds(start_seconds, "start_seconds")
        t1 = as_seconds(stop_seconds, "stop_seconds")
        rate = as_fps(fps) if fps is not None else None
        if t1 < t0:
            raise InvalidArgumentError(
                f"Invalid range: stop_seconds ({t1}) is before start_seconds ({t0}). "
                "Supported ranges have start_seconds <= stop_seconds."
            )
        self._check_times(np.array([t0]), "start_seconds")
        m = self._metadata
        if m.end_stream_seconds is not None and t1 > m.end_stream_seconds:
            raise InvalidArgumentError(
                f"Invalid stop_seconds ({t1}). Supported values are in "
                f"[{m.begin_stream_seconds}, {m.end_stream_seconds}]."
            )
        if rate is not None:
            return self._resampled(t0, t1, rate)
        if t0 == t1:
            return self._empty_batch()
        return self._frames_at_indices(self._mode.indices_played_in(t0, t1))

    def get_all_frames(self, fps: float | None = None) -> FrameBatch:
        """Return every frame of the stream, or (with ``fps``) the whole stream resampled to ``fps``.

        Args:
            fps: As in :meth:`get_frames_played_in_range`, over ``[begin_stream_seconds, end_stream_seconds)``.

        Raises:
            InvalidArgumentError: An ``fps`` that is not a finite positive number, or (with ``fps``) a stream
                whose end is unknown.
        """
        if fps is None:
            return self.get_frames_in_range(0, len(self))
        m = self._metadata
        if m.end_stream_seconds is None:
            raise InvalidArgumentError(
                "Invalid get_all_frames(fps=...) on a stream whose end is unknown. Use "
                "get_frames_played_in_range() with explicit times."
            )
        return self.get_frames_played_in_range(m.begin_stream_seconds, m.end_stream_seconds, fps=fps)

    def _resampled(self, t0: float, t1: float, fps: float) -> FrameBatch:
        """Frames shown at ``t0 + k * (1 / fps)``, ``k < round((t1 - t0) * fps)`` (torchcodec's time grid)."""
        step = 1.0 / fps
        count = math.floor((t1 - t0) * fps + 0.5)  # torchcodec rounds the number of output frames
        times = t0 + np.arange(count, dtype=np.int64) * step
        batch = self._frames_at_times(times, "seconds")
        return FrameBatch(
            data=batch.data,
            pts_seconds=torch.from_numpy(times),
            duration_seconds=torch.full((times.shape[0],), step, dtype=torch.float64),
        )

    # -- index persistence -------------------------------------------------------------------------------
    def save_index(self, path: str | os.PathLike[str]) -> None:
        """Write this decoder's exact index to ``path``; pass it back as ``VideoDecoder(..., index=path)``.

        Raises:
            InvalidArgumentError: The decoder is in approximate mode (it has no exact index).
        """
        self._check_open()
        self._store.save(self._mode.saved_index(), self._state.facts, path)

    @property
    def index(self) -> FrameIndex | None:
        """The exact :class:`FrameIndex` (``None`` in approximate mode)."""
        return self._mode.index


def _single(batch: FrameBatch) -> Frame:
    """The one frame of a one-frame batch."""
    return Frame(
        data=batch.data[0], pts_seconds=float(batch.pts_seconds[0]), duration_seconds=float(batch.duration_seconds[0])
    )
