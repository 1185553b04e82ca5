"""The VideoDecoder: torchcodec's API over PyAV demuxing, a shared planner and a CPU or NVDEC backend."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from gpudecode._args import as_fps, as_int, as_seconds, float_array, int_array
from gpudecode._color import (
    COLORSPACE_NAMES,
    PRIMARIES_NAMES,
    RANGE_NAMES,
    TRANSFER_NAMES,
    ColorSpec,
    color_spec,
    tag_name,
)
from gpudecode._container import PyAVDemuxer, codec_name, open_container, pick_stream
from gpudecode._device import (
    CpuFallbackStatus,
    cpu_backend_instead,
    parse_device,
    select_backend,
    select_raw_stream_backend,
)
from gpudecode._errors import (
    DecodeError,
    FrameIndexError,
    InvalidArgumentError,
    MediaError,
    TimeOutOfRangeError,
    invalid_choice,
)
from gpudecode._frame import Frame, FrameBatch
from gpudecode._index import FrameIndex, build_exact_index, to_seconds
from gpudecode._index_file import load_index_file, save_index_file, source_key
from gpudecode._memory import new_frames
from gpudecode._metadata import VideoStreamMetadata
from gpudecode._mp4 import Mp4Info, read_mp4_info
from gpudecode._planner import BackendUnsupported, Planner, PlanStats
from gpudecode._source import Source, make_source

__all__ = ["VideoDecoder"]

logger = logging.getLogger("gpudecode")

SEEK_MODES = ("exact", "approximate")
DIMENSION_ORDERS = ("NCHW", "NHWC")
INDEX_CACHE_ENV = "GPUDECODE_INDEX_CACHE"


def _bit_depth(pix_fmt: str | None) -> int:
    if not pix_fmt:
        return 8
    try:
        return int(av.VideoFormat(pix_fmt).components[0].bits)
    except (ValueError, av.error.FFmpegError, IndexError):
        return 8


def _torchcodec_arguments(
    num_threads: int | None,
    num_ffmpeg_threads: int | None,
    transforms: Any,
    output_dtype: Any,
    custom_frame_mappings: Any,
) -> int | None:
    """Accept torchcodec's constructor arguments where they mean something here; say clearly where they don't."""
    if num_ffmpeg_threads is not None:
        if num_threads is not None and num_threads != num_ffmpeg_threads:
            raise InvalidArgumentError(
                f"Invalid num_ffmpeg_threads ({num_ffmpeg_threads!r}) with num_threads "
                f"({num_threads!r}). They are the same setting; pass one of them."
            )
        num_threads = num_ffmpeg_threads
    if transforms is not None and (not isinstance(transforms, Sequence) or len(transforms) > 0):
        raise InvalidArgumentError(
            f"Invalid transforms ({transforms!r}). Decode-time transforms are not "
            "supported; apply torchvision transforms to the returned frames."
        )
    if output_dtype is not torch.uint8:
        raise InvalidArgumentError(f"Invalid output_dtype ({output_dtype!r}). Supported values are: torch.uint8.")
    if custom_frame_mappings is not None:
        raise InvalidArgumentError(
            "Invalid custom_frame_mappings. They are not supported; save an index with "
            "VideoDecoder.save_index() and pass it as index=."
        )
    return num_threads


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
        transforms: torchcodec's decode-time transforms; only ``None`` or an empty sequence is supported (apply
            torchvision transforms to the returned frames instead).
        output_dtype: Only ``torch.uint8`` (torchcodec's default) is supported.
        custom_frame_mappings: Not supported; pass a saved index with ``index=`` instead.

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
    ) -> None:
        self._closed = True
        num_threads = _torchcodec_arguments(
            num_threads, num_ffmpeg_threads, transforms, output_dtype, custom_frame_mappings
        )
        if seek_mode not in SEEK_MODES:
            raise invalid_choice("seek_mode", seek_mode, SEEK_MODES)
        if dimension_order not in DIMENSION_ORDERS:
            raise invalid_choice("dimension_order", dimension_order, DIMENSION_ORDERS)
        if num_threads is not None and (
            isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0
        ):
            raise InvalidArgumentError(
                f"Invalid num_threads ({num_threads!r}). Supported values are: None or an int >= 0."
            )
        if index is not None and seek_mode != "exact":
            raise InvalidArgumentError(
                "Invalid index with seek_mode='approximate'. An index file is only used with seek_mode='exact'."
            )
        self._device = parse_device(device)
        self._seek_mode = seek_mode
        self._dimension_order = dimension_order
        self._lock = threading.RLock()
        self._source: Source = make_source(source)
        self._pid = os.getpid()
        self._containers: list[Any] = []
        self._opened = False
        self._mp4: Mp4Info | None = None
        self._key: str | None = None
        if self._init_from_cache(stream_index, num_threads, index):
            self._closed = False
            return
        container = open_container(self._source)
        try:
            self._init(container, stream_index, num_threads, index)
        except BaseException:
            container.close()
            for c in self._containers:
                c.close()
            raise
        self._closed = False

    # -- construction ------------------------------------------------------------------------------------
    def _init(self, container: Any, stream_index: int | None, num_threads: int | None, index_path: Any) -> None:
        stream = pick_stream(container, stream_index)
        facts = _stream_facts(container, stream)
        self._time_base = Fraction(*facts["time_base"])
        if self._mp4 is None:
            with self._source.reader() as reader:
                # approximate mode needs no sample tables, only the rotation
                self._mp4 = read_mp4_info(reader, self._source.size_bytes, tables=self._seek_mode == "exact")
        index = None
        if self._seek_mode == "exact":
            index = self._get_index(container, stream, index_path, facts, best=stream_index is None)
        self._setup(facts, index, num_threads)
        self._open_with(container)

    def _init_from_cache(self, stream_index: int | None, num_threads: int | None, index_path: Any) -> bool:
        """Serve an exact decoder from the index cache without opening the file (CPU decoders only).

        The cache key is the file's content, and the entry holds the stream facts the metadata derives from, so
        the container is opened on first use instead (``av.open`` of a long MP4 parses every sample's tables).
        """
        cache_dir = os.environ.get(INDEX_CACHE_ENV)
        if not cache_dir or self._seek_mode != "exact" or index_path is not None or self._device.type != "cpu":
            return False
        with self._source.reader() as reader:
            self._mp4 = read_mp4_info(reader, self._source.size_bytes)
            self._key = source_key(self._mp4, reader, self._source.size_bytes)
        path = _cache_entry(cache_dir, self._key, stream_index)
        if not path.exists():
            return False
        try:
            idx = load_index_file(path)
        except (MediaError, OSError) as exc:
            logger.warning("gpudecode: ignoring unusable cached index %s: %s", path, exc)
            return False
        facts = idx.facts
        if not facts or idx.source_key != self._key or (stream_index is not None and idx.stream_index != stream_index):
            return False
        try:
            self._setup(facts, idx, num_threads)
        except MediaError:
            raise
        except (KeyError, TypeError, ValueError) as exc:  # facts from another gpudecode version, or tampered
            logger.warning("gpudecode: ignoring cached index %s with unusable stream facts: %r", path, exc)
            return False
        return True

    def _setup(self, facts: dict[str, Any], index: FrameIndex | None, num_threads: int | None) -> None:
        """Everything that needs only the stream facts (not an open container)."""
        self._facts = facts
        self._stream_index = int(facts["stream_index"])
        self._time_base = Fraction(*facts["time_base"])
        track = self._mp4.track(int(facts["stream_id"])) if self._mp4 is not None else None
        self._rotation = track.rotation_degrees if track is not None else 0
        self._has_display_matrix = track is not None and track.display_matrix
        self._rot_k = (round(self._rotation / 90.0) % 4) if self._rotation % 90 == 0 else 0
        pix_fmt = facts["pix_fmt"]
        self._bit_depth = _bit_depth(pix_fmt)
        self._color: ColorSpec = color_spec(facts["colorspace"], facts["color_range"], pix_fmt, self._bit_depth)
        self._index = index
        self._timeline = index.packet_timeline() if index is not None else None
        if self._mp4 is not None:
            self._mp4.release()  # keep no moov copy (hundreds of kB for long videos) beyond creation
        self._metadata = self._build_metadata(facts)
        if self._metadata.num_frames <= 0:
            raise MediaError("The video stream has no frames the header can account for. Use seek_mode='exact'.")
        self._num_threads_arg = num_threads
        self._num_threads = num_threads if num_threads is not None else usable_cpus()
        self._workers: list[Planner] = []
        self._pool: ThreadPoolExecutor | None = None

    def _open_with(self, container: Any) -> None:
        """Create the demuxer, the backend and the planner over an open container."""
        demuxer = PyAVDemuxer(self._source, self._stream_index, container=container, timeline=self._timeline)
        self._demuxer = demuxer
        if demuxer.raw:
            assert self._index is not None  # approximate mode refuses raw streams: their header counts nothing
            self._backend, self._fallback = select_raw_stream_backend(
                self._device, demuxer.stream, self._num_threads_arg, int(self._index.duration[0])
            )
        else:
            self._backend, self._fallback = select_backend(
                self._device, demuxer.stream, self._num_threads_arg, self._bit_depth, self._color
            )
        approx_key_of = approx_key_ts = None
        if self._index is None:
            approx_key_of, approx_key_ts = self._approx_key_locator(demuxer)
        nominal = self._nominal_duration()
        self._planner = Planner(
            demuxer=demuxer,
            backend=self._backend,
            key_pts=self._index.decode_key_pts if self._index is not None else None,
            approx_key_of=approx_key_of,
            approx_key_ts=approx_key_ts,
            nominal_duration=nominal,
            seek_margin=nominal * (int(self._facts["has_b_frames"]) + 3),
            begin_pts=self._begin_header_pts,
        )
        self._opened = True

    def _ensure_open(self) -> None:
        """Open the file on first use (decoders served from the index cache start without it)."""
        if self._opened:
            return
        container = open_container(self._source)
        try:
            stream = container.streams[self._stream_index]
            if (
                stream.codec_context is None
                or stream.codec_context.width != self._facts["width"]
                or stream.codec_context.height != self._facts["height"]
            ):
                raise MediaError(
                    f"{self._source.description} no longer matches its cached index. Clear "
                    f"{INDEX_CACHE_ENV} or rebuild the index."
                )
            self._open_with(container)
        except BaseException:
            container.close()
            raise

    def _open_locked(self) -> None:
        if not self._opened:
            with self._lock:
                self._ensure_open()

    def _open_fresh(self, stream_index: int) -> tuple[Any, Any]:
        """Open the source again; return the container (closed with the decoder) and its video stream."""
        c = open_container(self._source)
        self._containers.append(c)
        return c, c.streams[stream_index]

    def _source_key(self) -> str:
        if self._key is None:
            with self._source.reader() as reader:
                self._key = source_key(self._mp4, reader, self._source.size_bytes)
        return self._key

    def _get_index(self, container: Any, stream: Any, index_path: Any, facts: dict[str, Any], best: bool) -> FrameIndex:
        if index_path is not None:
            idx = load_index_file(index_path)
            self._check_index(idx, stream, f"index file {os.fspath(index_path)!r}")
            return idx
        cache_dir = os.environ.get(INDEX_CACHE_ENV)
        cache_file = None
        if cache_dir:
            cache_file = _cache_entry(cache_dir, self._source_key(), stream.index)
            if cache_file.exists():
                try:
                    idx = load_index_file(cache_file)
                    self._check_index(idx, stream, "cached index")
                    return idx
                except (MediaError, OSError) as exc:
                    logger.warning("gpudecode: ignoring unusable cached index %s: %s", cache_file, exc)
        used = [False]

        def open_stream() -> tuple[Any, Any]:
            if not used[0]:
                used[0] = True
                return container, stream
            return self._open_fresh(stream.index)  # during construction: self._stream_index is not set yet

        idx = build_exact_index(
            open_stream, self._mp4, self._source.size_bytes, self._key if self._key is not None else ""
        )
        for c in self._containers:
            c.close()
        self._containers.clear()
        if cache_file is not None:
            idx = _with_key(idx, self._source_key(), facts)
            try:
                save_index_file(idx, cache_file)
                if best:  # also reachable without naming the stream, so stream_index=None is served lazily
                    save_index_file(idx, _cache_entry(cache_dir, self._source_key(), None))
            except OSError as exc:
                logger.warning("gpudecode: could not write the index cache %s: %s", cache_file, exc)
        return idx

    def _check_index(self, idx: FrameIndex, stream: Any, what: str) -> None:
        if idx.source_key != self._source_key() or idx.stream_index != stream.index or idx.time_base != self._time_base:
            raise MediaError(
                f"The {what} was built for a different file or stream. Rebuild it with save_index() on this source."
            )

    def _approx_key_locator(self, demuxer: PyAVDemuxer) -> tuple[Any, Any]:
        """Keyframe lookups through FFmpeg's own container index (no scan), fetched lazily.

        The closures capture values, never ``self``: a decoder ↔ planner reference cycle would leave PyAV's objects
        to the cyclic collector, whose teardown order leaked native memory (measured: ~2 KB per decoder).
        """
        state: dict[str, Any] = {}
        begin = self._begin_header_pts

        def entries() -> Any:
            # IndexEntries points into its stream: fetch it again whenever the demuxer re-opened the file.
            if state.get("stream") is not demuxer.stream:
                e = demuxer.stream.index_entries
                state["stream"] = demuxer.stream
                state["entries"] = e
                state["usable"] = len(e) > 0
                # Demuxers that index decode timestamps (mov) map a seek time to them with one constant shift:
                # the stream's start minus its first decode timestamp. Seeking to entry + shift lands exactly
                # on that keyframe (seeking to the entry itself lands one keyframe early).
                state["shift"] = max(0, begin - int(e[0].timestamp)) if len(e) else 0
            return state["entries"] if state["usable"] else None

        def key_of(ts: int) -> int:
            e = entries()
            if e is None:
                return 1 << 62
            k = e.search_timestamp(int(ts), backward=True, any_frame=False)
            return int(k) if k >= 0 else 0

        def key_ts(k: int) -> int:
            e = entries()
            if e is None or not 0 <= k < len(e):
                return begin
            return int(e[k].timestamp) + state["shift"]

        return key_of, key_ts

    def _nominal_duration(self) -> int:
        if self._index is not None:
            d = self._index.duration
            return int(np.median(d)) if d.shape[0] else 1
        fps = self._fps_header
        if fps:
            return max(1, round(1 / (fps * self._time_base)))
        return 1

    def _build_metadata(self, f: dict[str, Any]) -> VideoStreamMetadata:
        tb = self._time_base
        duration_header = (
            float(f["stream_duration"] * tb)
            if f["stream_duration"]
            else (f["container_duration"] / 1_000_000 if f["container_duration"] else None)
        )
        frames_header = f["frames"]
        self._fps_header: Fraction | None = Fraction(*f["rate"]) if f["rate"] else None
        fps_header = float(self._fps_header) if self._fps_header else None
        begin_from_header = float(f["start_time"] * tb) if f["start_time"] is not None else None
        begin_header = begin_from_header if begin_from_header is not None else 0.0
        self._begin_header_pts = int(f["start_time"]) if f["start_time"] is not None else 0
        bit_rate = f["bit_rate"]
        idx = self._index
        if idx is not None:
            n_content = idx.num_frames
            begin_c = float(idx.begin_pts() * tb)
            end_c = float(idx.end_pts() * tb)
            num_frames = n_content
            duration = end_c - begin_c
            avg_fps = n_content / duration if duration > 0 else fps_header
            begin, end = begin_c, end_c
        else:
            n_content = begin_c = end_c = None
            if frames_header:
                num_frames = frames_header
            elif duration_header and fps_header:
                num_frames = round(duration_header * fps_header)
            else:
                raise MediaError(
                    "The header gives neither a frame count nor a duration and frame rate, so "
                    "approximate mode cannot index it. Use seek_mode='exact' (one scan of the packets; "
                    "raw H.264/HEVC elementary streams such as .h264/.265 files open that way)."
                )
            if not fps_header:
                raise MediaError(
                    "The header gives no frame rate, so approximate mode cannot place frames. Use seek_mode='exact'."
                )
            duration = duration_header
            avg_fps = fps_header
            begin = begin_header
            end = begin + duration_header if duration_header is not None else begin + num_frames / fps_header
        cw, ch = f["width"], f["height"]
        w, h = (ch, cw) if self._rot_k % 2 == 1 else (cw, ch)
        return VideoStreamMetadata(
            num_frames=int(num_frames),
            duration_seconds=duration,
            average_fps=avg_fps,
            duration_seconds_from_header=duration_header,
            bit_rate=float(bit_rate) if bit_rate else None,
            num_frames_from_header=frames_header,
            num_frames_from_content=n_content,
            begin_stream_seconds_from_content=begin_c,
            end_stream_seconds_from_content=end_c,
            codec=f["codec"],
            width=w,
            height=h,
            average_fps_from_header=fps_header,
            stream_index=self._stream_index,
            begin_stream_seconds=begin,
            end_stream_seconds=end,
            pixel_format=f["pix_fmt"],
            bit_depth=self._bit_depth,
            color_space=tag_name(COLORSPACE_NAMES, f["colorspace"]),
            color_range=tag_name(RANGE_NAMES, f["color_range"]),
            color_primaries=tag_name(PRIMARIES_NAMES, f["color_primaries"]),
            color_transfer_characteristic=tag_name(TRANSFER_NAMES, f["color_trc"]),
            rotation=self._rotation if self._has_display_matrix else None,
            coded_width=cw,
            coded_height=ch,
            begin_stream_seconds_from_header=begin_from_header,
            pixel_aspect_ratio=Fraction(*f["sample_aspect_ratio"]) if f.get("sample_aspect_ratio") else None,
        )

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
        if not self._opened and self._device.type == "cpu":
            return CpuFallbackStatus()  # known without opening a lazily opened (cached) CPU decoder
        self._open_locked()
        return self._fallback

    @property
    def decoding_device(self) -> str:
        """Which decoder produces the frames: ``"cpu"`` (FFmpeg) or ``"nvdec:N"``."""
        if not self._opened and self._device.type == "cpu":
            return "cpu"
        self._open_locked()
        return getattr(self._backend, "name", "cpu")

    @property
    def stats(self) -> PlanStats:
        """Counters of the last decode call (seeks, packets fed, frames decoded and converted)."""
        return self._planner.stats if self._opened else PlanStats()

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
        if not self._opened:
            return
        if self._pid != os.getpid():
            _FORK_ORPHANS.extend([self._demuxer, self._backend, *self._workers])
            self._workers = []
            return
        with self._lock:
            try:
                self._planner.invalidate()
                self._demuxer.close()
                for w in self._workers:
                    w.invalidate()
                    w.demuxer.close()  # type: ignore[attr-defined]
                    w.backend.close()  # type: ignore[attr-defined]  # their swscale contexts
                self._workers.clear()
                if self._pool is not None:
                    self._pool.shutdown(wait=True)
                    self._pool = None
            finally:
                close = getattr(self._backend, "close", None)
                if close is not None:
                    close()

    def __enter__(self) -> VideoDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidArgumentError("Invalid operation on a closed VideoDecoder. Create a new decoder.")

    # -- index helpers -----------------------------------------------------------------------------------
    def _normalize_indices(self, indices: np.ndarray) -> np.ndarray:
        n = len(self)
        bad = (indices < -n) | (indices >= n)
        if bad.any():
            raise FrameIndexError(
                f"Invalid frame index ({int(indices[bad][0])}). The video has {n} frames; "
                f"supported indices are -{n}..{n - 1}."
            )
        return np.where(indices < 0, indices + n, indices)

    def _seconds_to_ts(self, t: np.ndarray) -> np.ndarray:
        tb = self._time_base
        return np.floor(t * tb.denominator / tb.numerator + 1e-6).astype(np.int64)

    def _pts_seconds(self, pts: np.ndarray) -> np.ndarray:
        return to_seconds(pts, self._time_base)

    def _check_times(self, t: np.ndarray, name: str) -> None:
        m = self._metadata
        begin, end = m.begin_stream_seconds, m.end_stream_seconds
        bad = (t < begin) | ((t >= end) if end is not None else False)
        if np.any(bad):
            x = float(t[np.asarray(bad)][0]) if t.ndim else float(t)
            raise TimeOutOfRangeError(
                f"Invalid {name} ({x}). Supported values are in [{begin}, {end}), the times the stream plays."
            )

    def _approx_targets(self, frame_indices: np.ndarray) -> np.ndarray:
        fps = self._fps_header
        assert fps is not None
        tb = self._time_base
        # Middle of frame i's nominal interval, in time-base units (integer arithmetic).
        num = (2 * frame_indices + 1) * fps.denominator * tb.denominator
        den = 2 * fps.numerator * tb.numerator
        return self._begin_header_pts + num // den

    # -- decoding ----------------------------------------------------------------------------------------
    def _decode(
        self,
        unique_targets: np.ndarray,
        start_keys: np.ndarray | None,
        positions: list[np.ndarray],
        n_out: int,
        labels: np.ndarray,
    ) -> FrameBatch:
        """Decode unique targets; write target ``j``'s frame at each of ``positions[j]`` of the output batch."""
        return self._assemble(
            lambda emit: self._run_planned(unique_targets, start_keys, emit), positions, n_out, labels
        )

    def _assemble(
        self,
        run: Callable[[Callable[..., None]], list[int]],
        positions: list[np.ndarray],
        n_out: int,
        labels: np.ndarray,
    ) -> FrameBatch:
        """Allocate the output batch, let ``run(emit)`` decode into it, then rotate and order its dimensions.

        ``run`` calls ``emit(j, frame, pts, duration)`` for output ``j`` (written at each of ``positions[j]``) and
        returns the outputs it could not produce.
        """
        m = self._metadata
        out = new_frames((n_out, m.coded_height, m.coded_width, 3), self._device)
        out_np = out.numpy() if out.device.type == "cpu" else None
        pts_out = np.zeros(n_out, dtype=np.int64)
        dur_out = np.zeros(n_out, dtype=np.int64)

        last: dict[str, Any] = {"frame": None, "slot": -1}

        def emit(j: int, frame: Any, pts: int, dur: int, backend: Any = None) -> None:
            pos = positions[j]
            first = int(pos[0])
            backend = backend or self._backend
            if last["frame"] is frame and last["slot"] >= 0:
                out[first].copy_(out[last["slot"]])  # approximate mode: same frame for another target
            elif not isinstance(frame, torch.Tensor) and out_np is None and backend.output_device_type == "cuda":
                backend.convert_into(frame, out[first])  # straight into the batch, on the device
            elif isinstance(frame, torch.Tensor) or out_np is None or backend.output_device_type != "cpu":
                rgb = frame if isinstance(frame, torch.Tensor) else backend.convert(frame)
                if rgb.shape[0] != out.shape[1] or rgb.shape[1] != out.shape[2]:
                    raise DecodeError(
                        f"A decoded frame is {rgb.shape[1]}x{rgb.shape[0]}, but the stream is "
                        f"{out.shape[2]}x{out.shape[1]}; resolution changes are not supported."
                    )
                out[first].copy_(rgb, non_blocking=True)
            else:
                if frame.width != out.shape[2] or frame.height != out.shape[1]:
                    raise DecodeError(
                        f"A decoded frame is {frame.width}x{frame.height}, but the stream is "
                        f"{out.shape[2]}x{out.shape[1]}; resolution changes are not supported."
                    )
                backend.convert_into(frame, out_np[first])
            last["frame"], last["slot"] = frame, first
            for p in pos[1:]:
                out[int(p)].copy_(out[first])
            pts_out[pos] = pts
            dur_out[pos] = dur

        with self._lock:
            self._check_open()
            if self._pid != os.getpid():
                self._after_fork()
            self._ensure_open()
            self._planner.stats = PlanStats()
            try:
                missing = run(emit)
            except BackendUnsupported as exc:  # NVDEC refused the stream at its first Decode: the CPU takes over
                self._switch_to_cpu(str(exc))
                last["frame"], last["slot"] = None, -1
                missing = run(emit)
            if missing and self._backend.set_threads(1):
                # Frame threads lose the frames in flight when a damaged packet's error surfaces late: once more
                # with one thread, which decodes everything decodable; then back to the configured threads.
                self._planner.invalidate()
                last["frame"], last["slot"] = None, -1
                try:
                    missing = run(emit)
                finally:
                    self._backend.set_threads(self._num_threads_arg)
                    self._planner.invalidate()
        if missing:
            lost = [int(labels[j]) for j in missing[:10]]
            raise DecodeError(
                f"Could not decode frame(s) {lost}{' ...' if len(missing) > 10 else ''}: the data "
                "is damaged or missing. Other frames remain available."
            )
        data = out
        if self._rot_k:
            data = torch.rot90(data, self._rot_k, dims=(1, 2)).contiguous()
        if self._dimension_order == "NCHW":
            data = data.permute(0, 3, 1, 2)
        return FrameBatch(
            data=data,
            pts_seconds=torch.from_numpy(self._pts_seconds(pts_out)),
            duration_seconds=torch.from_numpy(self._pts_seconds(dur_out)),
        )

    def _switch_to_cpu(self, reason: str) -> None:
        """Replace the NVDEC backend by the CPU one for the rest of this decoder's life, saying why."""
        self._backend.close()
        self._backend, self._fallback = cpu_backend_instead(
            self._device, self._demuxer.stream, self._num_threads_arg, reason
        )
        self._planner.backend = self._backend
        self._planner.invalidate()

    def _after_fork(self) -> None:
        """In a forked child: re-open the file and rebuild the decoder; never reuse the parent's state.

        The parent's container shares its file offset with the child, and its CUDA/NVDEC objects are invalid in
        the child, so both are dropped (not closed: closing them could touch the parent's resources).
        """
        self._pid = os.getpid()
        if self._opened:  # else nothing was inherited
            _FORK_ORPHANS.extend([self._planner, self._demuxer, self._backend, *self._workers])
            self._workers = []
            self._pool = None
            self._opened = False  # the caller's _ensure_open() builds everything afresh in this process

    def _parallel_ok(self) -> bool:
        return (
            self.decoding_device == "cpu"
            and self._num_threads > 1
            and self._source.file is None
            and not self._demuxer.raw
        )

    def _worker_planners(self, count: int) -> list[Planner]:
        """Planners with their own container and single-threaded decoder, for decoding runs in parallel."""
        from gpudecode._backends._cpu import CpuBackend

        while len(self._workers) < count:
            demuxer = PyAVDemuxer(self._source, self._stream_index, timeline=self._timeline)
            backend = CpuBackend(demuxer.stream, 1)
            p = self._planner
            key_of, key_ts = self._approx_key_locator(demuxer) if p.approx_key_of is not None else (None, None)
            self._workers.append(
                Planner(
                    demuxer=demuxer,
                    backend=backend,
                    key_pts=p.key_pts,
                    approx_key_of=key_of,
                    approx_key_ts=key_ts,
                    nominal_duration=p.nominal_duration,
                    seek_margin=p.seek_margin,
                    begin_pts=p.begin_pts,
                )
            )
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._num_threads, thread_name_prefix="gpudecode")
        return self._workers[:count]

    def _run_planned(self, targets: np.ndarray, start_keys: np.ndarray | None, emit: Any) -> list[int]:
        """Run the planner; independent keyframe runs are spread over worker threads on the CPU backend."""
        groups = self._planner.groups(targets, start_keys) if self._parallel_ok() else []
        if len(groups) < 2:
            return self._planner.run(targets, start_keys, emit)
        workers = min(self._num_threads, len(groups))
        # contiguous chunks of runs with about equal decode cost, so each worker still moves forward only
        total = sum(c for _, _, c in groups)
        chunks: list[list[tuple[int, int, int]]] = [[]]
        acc = 0
        for g in groups:
            if acc >= total * len(chunks) / workers and len(chunks) < workers and chunks[-1]:
                chunks.append([])
            chunks[-1].append(g)
            acc += g[2]
        # Parallel single-threaded runs beat one frame-threaded decoder only when the work divides evenly
        # (measured: 2 frame threads are ~1.4x one thread on 640x360 H.264).
        if max(sum(c for _, _, c in ch) for ch in chunks) > 0.7 * total:
            return self._planner.run(targets, start_keys, emit)
        planners = self._worker_planners(len(chunks))

        def work(planner: Planner, chunk: list[tuple[int, int, int]]) -> list[int]:
            a, b = chunk[0][0], chunk[-1][1]
            planner.stats = PlanStats()
            sub_keys = start_keys[a:b] if start_keys is not None else None
            lost = planner.run(
                targets[a:b], sub_keys, lambda j, frame, pts, dur: emit(a + j, frame, pts, dur, planner.backend)
            )
            return [a + j for j in lost]

        assert self._pool is not None
        futures = [self._pool.submit(work, pl, ch) for pl, ch in zip(planners, chunks, strict=False)]
        missing = sorted(j for f in futures for j in f.result())
        for pl in planners:
            self._planner.stats.add(pl.stats)
        return missing

    def _frames_at_indices(self, idx: np.ndarray) -> FrameBatch:
        idx = self._normalize_indices(idx)
        if idx.shape[0] == 0:
            return self._empty_batch()
        uniq, inverse = np.unique(idx, return_inverse=True)
        positions = _positions(inverse, uniq.shape[0])
        if self._index is not None:
            batch = self._decode(
                self._index.decode_pts[uniq], self._index.start_key[uniq], positions, idx.shape[0], uniq
            )
            # Report the index's pts/durations (the decoder's match them; the index also covers durations
            # the decoder leaves unset).
            batch.pts_seconds = torch.from_numpy(self._pts_seconds(self._index.pts[idx]))
            batch.duration_seconds = torch.from_numpy(self._pts_seconds(self._index.duration[idx]))
            return batch
        return self._decode(self._approx_targets(uniq), None, positions, idx.shape[0], uniq)

    def _frames_at_times(self, t: np.ndarray, name: str) -> FrameBatch:
        self._check_times(t, name)
        if t.shape[0] == 0:
            return self._empty_batch()
        if self._index is not None:
            return self._frames_at_indices(self._index.frames_played_at(t))
        ts = self._seconds_to_ts(t)
        uniq, inverse = np.unique(ts, return_inverse=True)
        return self._decode(uniq, None, _positions(inverse, uniq.shape[0]), t.shape[0], uniq)

    def _empty_batch(self) -> FrameBatch:
        m = self._metadata
        shape = (0, 3, m.height, m.width) if self._dimension_order == "NCHW" else (0, m.height, m.width, 3)
        return FrameBatch(
            data=torch.empty(shape, dtype=torch.uint8, device=self._device),
            pts_seconds=torch.empty(0, dtype=torch.float64),
            duration_seconds=torch.empty(0, dtype=torch.float64),
        )

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

    def _frames_in_range(self, lo: int, hi: int, step: int, owner: object | None = None) -> FrameBatch:
        """Frames ``lo, lo + step, ...`` before ``hi``.

        Approximate mode with ``step > 0`` takes decoder outputs in a row from frame ``lo``'s nominal time, so each
        frame comes once even where timestamps step back; ``owner`` (an iterator's token) continues its own
        previous sequence when nothing else decoded in between.
        """
        if self._index is not None or step < 0 or hi <= lo:
            return self._frames_at_indices(np.arange(lo, hi, step, dtype=np.int64))
        count = len(range(lo, hi, step))
        target = int(self._approx_targets(np.array([lo]))[0])
        positions = [np.array([j]) for j in range(count)]

        def run(emit: Callable[..., None]) -> list[int]:
            done = self._planner.run_sequence(target, count, step, emit, owner)
            return list(range(done, count))

        return self._assemble(run, positions, count, np.arange(lo, hi, step))

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
        if self._index is not None:
            return self._frames_at_indices(self._index.frames_played_in(t0, t1))
        fps = float(self._fps_header or 1)
        i0 = math.floor((t0 - m.begin_stream_seconds) * fps + 1e-9)
        i1 = math.ceil((t1 - m.begin_stream_seconds) * fps - 1e-9)
        return self._frames_at_indices(np.arange(max(i0, 0), min(max(i1, i0 + 1), len(self)), dtype=np.int64))

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
        if self._index is None:
            raise InvalidArgumentError(
                "Invalid save_index() with seek_mode='approximate'. Only exact indexes "
                "can be saved; open the decoder with seek_mode='exact'."
            )
        save_index_file(_with_key(self._index, self._source_key(), self._facts), path)

    @property
    def index(self) -> FrameIndex | None:
        """The exact :class:`FrameIndex` (``None`` in approximate mode)."""
        return self._index


# Objects inherited across a fork: kept referenced so their finalizers never run in the child.
_FORK_ORPHANS: list[Any] = []


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, as a pinned DataLoader worker has), not the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _single(batch: FrameBatch) -> Frame:
    """The one frame of a one-frame batch."""
    return Frame(
        data=batch.data[0], pts_seconds=float(batch.pts_seconds[0]), duration_seconds=float(batch.duration_seconds[0])
    )


def _cache_entry(cache_dir: str, key: str, stream_index: int | None) -> Path:
    """Path of a cached index: one entry per stream, and a ``best`` alias for ``stream_index=None``."""
    return Path(cache_dir) / f"{key}-s{'best' if stream_index is None else stream_index}.gdidx"


def _with_key(idx: FrameIndex, key: str, facts: dict[str, Any] | None = None) -> FrameIndex:
    if idx.source_key == key and (facts is None or idx.facts == facts):
        return idx
    return dataclasses.replace(idx, source_key=key, facts=facts or idx.facts)


def _stream_facts(container: Any, stream: Any) -> dict[str, Any]:
    """The container, stream and codec values the decoder derives its state from (JSON-serializable)."""
    cc = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate
    tb = stream.time_base
    return {
        "stream_index": int(stream.index),
        "stream_id": int(stream.id),
        "time_base": [tb.numerator, tb.denominator] if tb else [1, 1],
        "codec": codec_name(cc),
        "pix_fmt": cc.pix_fmt or None,
        "width": int(cc.width),
        "height": int(cc.height),
        "colorspace": int(cc.colorspace),
        "color_range": int(cc.color_range),
        "color_primaries": int(cc.color_primaries),
        "color_trc": int(cc.color_trc),
        "has_b_frames": int(cc.has_b_frames or 0),
        "bit_rate": int(cc.bit_rate or container.bit_rate or 0) or None,
        "stream_duration": int(stream.duration) if stream.duration else None,
        "container_duration": int(container.duration) if container.duration else None,
        "frames": int(stream.frames) if stream.frames else None,
        "rate": [rate.numerator, rate.denominator] if rate else None,
        "start_time": int(stream.start_time) if stream.start_time is not None else None,
        "sample_aspect_ratio": [sar.numerator, sar.denominator] if (sar := stream.sample_aspect_ratio) else [0, 1],
    }


def _positions(inverse: np.ndarray, n_unique: int) -> list[np.ndarray]:
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=n_unique)
    return np.split(order, np.cumsum(counts)[:-1])
