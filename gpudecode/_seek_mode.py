"""Seek modes: how frame indices and times map to decode targets, chosen once when a decoder opens.

``seek_mode="exact"`` (:class:`ExactMode`) holds a frame index built from one scan of the packets: frame ``i`` is the
``i``-th frame in presentation order, at its exact pts. ``seek_mode="approximate"`` (:class:`ApproximateMode`) trusts
the header: frame ``i`` is the frame shown in the middle of ``[begin + i / fps, begin + (i + 1) / fps)``. Both answer
the same questions (how many frames, what the stream's extent is, which targets a request decodes, which keyframe
lookups the planner gets), so nothing else in the decoder asks which mode it is in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

from gpudecode._container import PyAVDemuxer
from gpudecode._errors import InvalidArgumentError, MediaError
from gpudecode._index import FrameIndex, median_int
from gpudecode._targets import ExactTargets, Targets, TimeTargets
from gpudecode._timeline import PacketTimeline

__all__ = ["ApproximateMode", "DecodeRequest", "ExactMode", "Extent", "Header", "SeekMode", "positions_of"]


@dataclass(frozen=True)
class Header:
    """What the container header says about the stream's timing.

    Attributes:
        duration_seconds: The stream's (else the container's) duration, or ``None``.
        num_frames: The frame count, or ``None``.
        fps: The average (else guessed) frame rate, or ``None``.
        begin_seconds: The stream's start time, or ``None`` when the header has none.
        begin_pts: The start time in time-base units (0 when the header has none).
    """

    duration_seconds: float | None
    num_frames: int | None
    fps: Fraction | None
    begin_seconds: float | None
    begin_pts: int

    @classmethod
    def from_facts(cls, facts: dict[str, Any], time_base: Fraction) -> Header:
        """Read the header's values from a decoder's stream facts (``_container.stream_facts``)."""
        if facts["stream_duration"]:
            duration = float(facts["stream_duration"] * time_base)
        elif facts["container_duration"]:
            duration = facts["container_duration"] / 1_000_000
        else:
            duration = None
        start = facts["start_time"]
        return cls(
            duration_seconds=duration,
            num_frames=facts["frames"],
            fps=Fraction(*facts["rate"]) if facts["rate"] else None,
            begin_seconds=float(start * time_base) if start is not None else None,
            begin_pts=int(start) if start is not None else 0,
        )


@dataclass(frozen=True)
class Extent:
    """How many frames the decoder serves and the times they span (the mode-dependent part of the metadata).

    Attributes:
        num_frames: Frames the decoder serves (``len(decoder)``).
        duration_seconds: ``end - begin``, or the header's duration in approximate mode.
        average_fps: Frames per second over the extent.
        begin_seconds: The first frame's start.
        end_seconds: The last frame's end.
        num_frames_from_content: The index's frame count (``None`` without an index).
        begin_seconds_from_content: The index's first pts (``None`` without an index).
        end_seconds_from_content: The index's last frame end (``None`` without an index).
    """

    num_frames: int
    duration_seconds: float | None
    average_fps: float | None
    begin_seconds: float
    end_seconds: float | None
    num_frames_from_content: int | None = None
    begin_seconds_from_content: float | None = None
    end_seconds_from_content: float | None = None


@dataclass
class DecodeRequest:
    """One access call turned into planner work.

    Attributes:
        targets: Sorted, unique decode targets in time-base units (exact: frames' pts; approximate: times).
        start_keys: Exact mode: the keyframe ordinal each target's decode starts from; ``None`` otherwise.
        positions: For each target, the output slots that receive its frame.
        count: Output slots in all (duplicates included).
        labels: What an error names for each target (a frame index, or a timestamp).
        pts: The outputs' pts in time-base units where the mode knows them exactly (else the decoder's are used).
        durations: The outputs' durations likewise.
    """

    targets: np.ndarray
    start_keys: np.ndarray | None
    positions: list[np.ndarray]
    count: int
    labels: np.ndarray
    pts: np.ndarray | None = None
    durations: np.ndarray | None = None


class SeekMode(Protocol):
    """What the decoder asks of its seek mode."""

    name: str
    index: FrameIndex | None
    extent: Extent

    def nominal_duration(self) -> int:
        """The usual frame duration in time-base units (for frames that carry none)."""

    def planner_targets(self, demuxer: PyAVDemuxer, seek_margin: int) -> Targets:
        """How the planner over ``demuxer`` matches targets and finds keyframes.

        ``seek_margin``: how far before a target time to seek (time targets).
        """

    def timeline(self) -> PacketTimeline | None:
        """The packet timeline the demuxer serves packets from, if the mode has one."""

    def for_indices(self, indices: np.ndarray) -> DecodeRequest:
        """The work for frames at ``indices`` (in range, non-negative, non-empty)."""

    def for_times(self, seconds: np.ndarray) -> DecodeRequest:
        """The work for the frames shown at ``seconds`` (inside the stream, non-empty)."""

    def indices_played_in(self, start_seconds: float, stop_seconds: float) -> np.ndarray:
        """Indices of the frames shown during ``[start_seconds, stop_seconds)`` (``start < stop``)."""

    def sequence_target(self, first: int) -> int | None:
        """The start time of a forward range from frame ``first`` taken as consecutive decoder outputs.

        ``None`` where ranges are decoded by index.
        """

    def saved_index(self) -> FrameIndex:
        """The index :meth:`VideoDecoder.save_index` writes."""


def positions_of(inverse: np.ndarray, n_unique: int) -> list[np.ndarray]:
    """For each unique value, the positions that hold it (from ``np.unique(..., return_inverse=True)``)."""
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=n_unique)
    return np.split(order, np.cumsum(counts)[:-1])


@dataclass
class ExactMode:
    """Frames from an exact index: frame ``i`` is the ``i``-th in presentation order, at its own pts.

    Attributes:
        index: The frame index.
        time_base: The stream's time base.
        header: The header's timing (for the average rate of a stream shorter than one frame).
    """

    index: FrameIndex
    time_base: Fraction
    header: Header
    name: str = "exact"

    def __post_init__(self) -> None:
        idx, tb = self.index, self.time_base
        begin, end = float(idx.begin_pts() * tb), float(idx.end_pts() * tb)
        duration = end - begin
        fps = float(self.header.fps) if self.header.fps else None
        self.extent = Extent(
            num_frames=idx.num_frames,
            duration_seconds=duration,
            average_fps=idx.num_frames / duration if duration > 0 else fps,
            begin_seconds=begin,
            end_seconds=end,
            num_frames_from_content=idx.num_frames,
            begin_seconds_from_content=begin,
            end_seconds_from_content=end,
        )

    def nominal_duration(self) -> int:
        """The median frame duration of the index."""
        d = self.index.duration
        return median_int(d) if d.shape[0] else 1

    def planner_targets(self, demuxer: PyAVDemuxer, seek_margin: int) -> Targets:
        """Frames by exact pts; the keyframes' pts in decode order (the planner seeks to them exactly)."""
        return ExactTargets(self.index.decode_key_pts)

    def timeline(self) -> PacketTimeline | None:
        """The index's packet timeline (for streams whose timestamps the demuxer cannot be trusted with)."""
        return self.index.packet_timeline()

    def for_indices(self, indices: np.ndarray) -> DecodeRequest:
        """Decode each frame's pts from its start keyframe; report the index's pts and durations."""
        uniq, inverse = np.unique(indices, return_inverse=True)
        idx = self.index
        return DecodeRequest(
            targets=idx.decode_pts[uniq],
            start_keys=idx.start_key[uniq],
            positions=positions_of(inverse, uniq.shape[0]),
            count=indices.shape[0],
            labels=uniq,
            # the decoder's timestamps match the index's; the index also covers durations the decoder leaves unset
            pts=idx.pts[indices],
            durations=idx.duration[indices],
        )

    def for_times(self, seconds: np.ndarray) -> DecodeRequest:
        """The frames the index says are shown at ``seconds``."""
        return self.for_indices(self.index.frames_played_at(seconds))

    def indices_played_in(self, start_seconds: float, stop_seconds: float) -> np.ndarray:
        """The index's frames shown during the range."""
        return self.index.frames_played_in(start_seconds, stop_seconds)

    def sequence_target(self, first: int) -> int | None:
        """Never: exact ranges are decoded by index."""
        return None

    def saved_index(self) -> FrameIndex:
        """The exact index."""
        return self.index


@dataclass
class ApproximateMode:
    """Frames placed by the header: frame ``i`` is the one shown at the middle of its nominal interval.

    Attributes:
        time_base: The stream's time base.
        header: The header's timing; it must give a frame rate, and a frame count or a duration.

    Raises:
        MediaError: The header cannot place frames (no frame rate, or neither a count nor a duration).
    """

    time_base: Fraction
    header: Header
    name: str = "approximate"
    index: FrameIndex | None = None

    def __post_init__(self) -> None:
        h = self.header
        fps = float(h.fps) if h.fps else None
        if h.num_frames:
            num_frames = h.num_frames
        elif h.duration_seconds and fps:
            num_frames = round(h.duration_seconds * fps)
        else:
            raise MediaError(
                "The header gives neither a frame count nor a duration and frame rate, so "
                "approximate mode cannot index it. Use seek_mode='exact' (one scan of the packets; "
                "raw H.264/HEVC elementary streams such as .h264/.265 files open that way)."
            )
        if not fps:
            raise MediaError(
                "The header gives no frame rate, so approximate mode cannot place frames. Use seek_mode='exact'."
            )
        assert h.fps is not None  # fps is its float
        self.fps: Fraction = h.fps
        begin = h.begin_seconds if h.begin_seconds is not None else 0.0
        end = begin + h.duration_seconds if h.duration_seconds is not None else begin + num_frames / fps
        self.extent = Extent(
            num_frames=int(num_frames),
            duration_seconds=h.duration_seconds,
            average_fps=fps,
            begin_seconds=begin,
            end_seconds=end,
        )

    def nominal_duration(self) -> int:
        """One frame interval at the header's rate, in time-base units."""
        return max(1, round(1 / (self.fps * self.time_base)))

    def planner_targets(self, demuxer: PyAVDemuxer, seek_margin: int) -> Targets:
        """Frames by time; keyframe lookups through the container's own index."""
        key_of, key_ts = approx_key_locator(demuxer, self.header.begin_pts)
        return TimeTargets(key_of, key_ts, seek_margin, self.header.begin_pts)

    def timeline(self) -> PacketTimeline | None:
        """None: packets come as the demuxer reads them."""
        return None

    def _targets(self, frame_indices: np.ndarray) -> np.ndarray:
        """Middle of each frame's nominal interval, in time-base units (integer arithmetic)."""
        fps, tb = self.fps, self.time_base
        num = (2 * frame_indices + 1) * fps.denominator * tb.denominator
        den = 2 * fps.numerator * tb.numerator
        return self.header.begin_pts + num // den

    def for_indices(self, indices: np.ndarray) -> DecodeRequest:
        """The frames shown at the middle of each index's nominal interval."""
        uniq, inverse = np.unique(indices, return_inverse=True)
        return DecodeRequest(
            targets=self._targets(uniq),
            start_keys=None,
            positions=positions_of(inverse, uniq.shape[0]),
            count=indices.shape[0],
            labels=uniq,
        )

    def for_times(self, seconds: np.ndarray) -> DecodeRequest:
        """The frames shown at ``seconds``, found by decoding from the keyframe before each."""
        tb = self.time_base
        ts = np.floor(seconds * tb.denominator / tb.numerator + 1e-6).astype(np.int64)
        uniq, inverse = np.unique(ts, return_inverse=True)
        return DecodeRequest(
            targets=uniq,
            start_keys=None,
            positions=positions_of(inverse, uniq.shape[0]),
            count=seconds.shape[0],
            labels=self._frame_at(uniq),
        )

    def _frame_at(self, ts: np.ndarray) -> np.ndarray:
        """The nominal frame whose interval holds each timestamp (what an error names), within the stream."""
        fps, tb = self.fps, self.time_base
        i = (ts - self.header.begin_pts) * tb.numerator * fps.numerator // (tb.denominator * fps.denominator)
        return np.clip(i, 0, self.extent.num_frames - 1)

    def indices_played_in(self, start_seconds: float, stop_seconds: float) -> np.ndarray:
        """The nominal frames whose intervals overlap the range (at least one)."""
        fps, begin = float(self.fps), self.extent.begin_seconds
        i0 = math.floor((start_seconds - begin) * fps + 1e-9)
        i1 = math.ceil((stop_seconds - begin) * fps - 1e-9)
        return np.arange(max(i0, 0), min(max(i1, i0 + 1), self.extent.num_frames), dtype=np.int64)

    def sequence_target(self, first: int) -> int | None:
        """Frame ``first``'s nominal time: a range is the decoder's outputs from there, each frame once."""
        return int(self._targets(np.array([first]))[0])

    def saved_index(self) -> FrameIndex:
        """Refused: approximate mode has no index.

        Raises:
            InvalidArgumentError: Always.
        """
        raise InvalidArgumentError(
            "Invalid save_index() with seek_mode='approximate'. Only exact indexes "
            "can be saved; open the decoder with seek_mode='exact'."
        )


def approx_key_locator(demuxer: PyAVDemuxer, begin: int) -> tuple[Any, Any]:
    """Keyframe lookups through FFmpeg's own container index (no scan), fetched lazily.

    The closures capture values, never a decoder: a decoder ↔ planner reference cycle would leave PyAV's objects to
    the cyclic collector, whose teardown order leaked native memory (measured: ~2 KB per decoder).
    """
    state: dict[str, Any] = {}

    def entries() -> Any:
        # IndexEntries points into its stream: fetch it again whenever the demuxer re-opened the file.
        if state.get("stream") is not demuxer.stream:
            e = demuxer.stream.index_entries
            state["stream"] = demuxer.stream
            state["entries"] = e
            state["usable"] = len(e) > 0
            # Demuxers that index decode timestamps (mov) map a seek time to them with one constant shift: the
            # stream's start minus its first decode timestamp. Seeking to entry + shift lands exactly on that
            # keyframe (seeking to the entry itself lands one keyframe early).
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
