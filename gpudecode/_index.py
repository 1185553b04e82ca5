"""Frame indexes: which frames a stream has, in presentation order, and where decoding must start for each.

An index is built once per decoder. ``exact`` indexes come from one pass over the stream's packets (no
decoding); for non-fragmented MP4/MOV files the pass reads FFmpeg's own sample index plus the ``ctts`` table
instead of demuxing every packet. ``approximate`` indexes trust the header (frame ``i`` at
``begin + i / fps``). All timestamps are integers in the stream's time base.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from gpudecode._container import demuxed, discard_other_streams, is_raw_stream, raw_frame_duration
from gpudecode._errors import MediaError
from gpudecode._mp4 import Mp4Info
from gpudecode._timeline import PacketTimeline, played_at, presentation_ranks, segments_of

__all__ = ["FrameIndex", "build_exact_index", "median_int", "to_seconds"]

logger = logging.getLogger("gpudecode")


@dataclass(frozen=True, eq=False)
class FrameIndex:
    """The exact frame index of one video stream.

    Attributes:
        time_base: The stream's time base (seconds per timestamp unit).
        pts: Presentation timestamps of the frames, ascending (frame ``i`` is ``pts[i]``), int64.
        duration: Duration of each frame (its packet's duration, or the gap to the next frame), int64.
        is_key: Whether frame ``i`` comes from a keyframe packet.
        key_pts: Presentation timestamps of the keyframe packets in decode order (discarded ones included:
            they are valid places to start decoding), int64.
        start_key: For frame ``i``, the position in ``key_pts`` of the keyframe decoding must start from.
        source_key: The content key of the file this index describes (see :func:`source_key`).
        stream_index: The stream this index describes.
        method: How it was built: ``"mp4-tables"`` or ``"packet-scan"`` (``"file"`` when loaded).
        facts: The stream facts (codec parameters, header values) the decoder derived its metadata from, when
            known; a decoder served from the index cache uses them instead of opening the file up front.
        plan_pts: ``None`` when ``pts`` identify the frames and ascend. Otherwise (timestamps that repeat or
            step back, see ``_timeline``) each frame's value on the private decode timeline the planner uses.
        plan_key_pts: With ``plan_pts``: the keyframes' decode-timeline values, decode order.
        packet_pos: With ``plan_pts``: the byte position of every packet (discarded ones included) in
            presentation order; packet ``packet_pos[r]`` has timeline value ``r * plan_step``.
        plan_step: With ``plan_pts``: the timeline's step between consecutive packets.
        segment_starts: With ``plan_pts``: the first frame of each segment (see ``_timeline``).
    """

    time_base: Fraction
    pts: np.ndarray
    duration: np.ndarray
    is_key: np.ndarray
    key_pts: np.ndarray
    start_key: np.ndarray
    source_key: str
    stream_index: int
    method: str = "packet-scan"
    facts: dict[str, Any] | None = None
    plan_pts: np.ndarray | None = None
    plan_key_pts: np.ndarray | None = None
    packet_pos: np.ndarray | None = None
    plan_step: int = 1
    segment_starts: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        """Number of frames."""
        return int(self.pts.shape[0])

    @property
    def num_keyframes(self) -> int:
        """Number of keyframe packets (decode start points)."""
        return int(self.key_pts.shape[0])

    def begin_pts(self) -> int:
        """Presentation timestamp of the first frame."""
        return int(self.pts[0])

    def end_pts(self) -> int:
        """End of the last frame: the largest ``pts + duration``."""
        return int(np.max(self.pts + self.duration))

    @property
    def decode_pts(self) -> np.ndarray:
        """What the planner targets for each frame: ``plan_pts`` where timestamps do not identify frames."""
        return self.pts if self.plan_pts is None else self.plan_pts

    @property
    def decode_key_pts(self) -> np.ndarray:
        """The planner's keyframe timestamps (ascending), on the same timeline as :attr:`decode_pts`."""
        return self.key_pts if self.plan_key_pts is None else self.plan_key_pts

    def packet_timeline(self) -> PacketTimeline | None:
        """How the demuxer stamps packets for the planner; ``None`` when their own pts serve."""
        if self.plan_key_pts is None or self.packet_pos is None:
            return None
        return PacketTimeline.build(self.packet_pos, self.plan_step, self.plan_key_pts, self.key_pts)

    @functools.cached_property
    def _pts_seconds(self) -> np.ndarray:
        return to_seconds(self.pts, self.time_base)

    @functools.cached_property
    def _end_seconds(self) -> np.ndarray:
        return to_seconds(self.pts + self.duration, self.time_base)

    @functools.cached_property
    def _segments(self) -> list[tuple[int, int]]:
        return segments_of(self.segment_starts, self.num_frames)

    def frames_played_at(self, seconds: np.ndarray) -> np.ndarray:
        """Index of the frame shown at each time (see ``_timeline.played_at``), ``seconds`` in seconds."""
        return played_at(self._pts_seconds, self._end_seconds, self._segments, seconds)

    def frames_played_in(self, start_seconds: float, stop_seconds: float) -> np.ndarray:
        """Indices (ascending) of the frames shown during ``[start_seconds, stop_seconds)``, a non-empty range.

        The frame shown at ``start_seconds``, then every frame starting after it and before ``stop_seconds``.
        """
        pts = self._pts_seconds
        first = int(self.frames_played_at(np.array([start_seconds]))[0])
        if self.segment_starts is None:
            return np.arange(first, int(np.searchsorted(pts, stop_seconds, side="left")), dtype=np.int64)
        later = np.flatnonzero((pts > start_seconds) & (pts < stop_seconds))
        return np.union1d(later, [first]).astype(np.int64)


def to_seconds(ts: np.ndarray, time_base: Fraction) -> np.ndarray:
    """Timestamps in ``time_base`` units as float64 seconds (the one conversion every reported time goes through)."""
    return ts.astype(np.float64) * time_base.numerator / time_base.denominator


def _from_packets(
    pkt_pts: np.ndarray,
    pkt_dur: np.ndarray,
    pkt_key: np.ndarray,
    pkt_discard: np.ndarray,
    pkt_pos: np.ndarray,
    time_base: Fraction,
    source_key: str,
    stream_index: int,
    method: str,
) -> FrameIndex:
    """Assemble an index from per-packet arrays in decode order (see ``_timeline`` for the frame order)."""
    n = pkt_pts.shape[0]
    decode_pos = np.arange(n, dtype=np.int64)
    keep = ~pkt_discard
    if not keep.any():
        raise MediaError("The video stream has no decodable frames (every packet is empty or discarded).")
    rank, segment = presentation_ranks(pkt_pts, pkt_key)
    order = np.argsort(rank[keep])
    pts = pkt_pts[keep][order]
    frame_pos = decode_pos[keep][order]
    dur = _filled_durations(pts, pkt_dur[keep][order])
    plan = pkt_pts
    timeline: dict[str, Any] = {}
    by_pts = int(segment[-1]) == 0 and _all_distinct(pkt_pts)
    if not by_pts and not ((pkt_pos >= 0).all() and _all_distinct(pkt_pos)):
        logger.warning(
            "gpudecode: the stream's timestamps repeat or step back and its packets have no byte "
            "positions to tell them apart; frames with equal timestamps may be confused"
        )
    elif not by_pts:
        step = max(1, median_int(dur))
        plan = rank * step
        seg = segment[keep][order]
        timeline = {
            "plan_pts": plan[frame_pos],
            "plan_key_pts": plan[pkt_key],
            "packet_pos": pkt_pos[np.argsort(rank)],
            "plan_step": step,
            "segment_starts": np.flatnonzero(np.diff(seg, prepend=-1) != 0).astype(np.int64),
        }
    key_positions = decode_pos[pkt_key]
    if key_positions.shape[0] == 0 or key_positions[0] != 0:
        # Streams that do not start with a keyframe: decoding can only start at the first packet.
        key_positions = np.concatenate([[0], key_positions])
        pkt_key = pkt_key.copy()
        pkt_key[0] = True
        if timeline:
            timeline["plan_key_pts"] = plan[pkt_key]
    start = _start_keys(key_positions, plan[pkt_key], frame_pos, plan[frame_pos])
    is_key = pkt_key[frame_pos]  # key_positions are the positions pkt_key marks
    return FrameIndex(
        time_base=time_base,
        pts=np.ascontiguousarray(pts, dtype=np.int64),
        duration=np.ascontiguousarray(dur, dtype=np.int64),
        is_key=is_key,
        key_pts=np.ascontiguousarray(pkt_pts[pkt_key], dtype=np.int64),
        start_key=np.ascontiguousarray(start, dtype=np.int64),
        source_key=source_key,
        stream_index=stream_index,
        method=method,
        **timeline,
    )


def median_int(a: np.ndarray) -> int:
    """``int(np.median(a))`` of a non-empty integer array, without ``np.median``'s overhead.

    Index building is on every decoder's creation path; this is the same float64 arithmetic on the one or two
    middle values.
    """
    n = a.shape[0]
    k = n // 2
    if n % 2:
        return int(float(np.partition(a, k)[k]))
    part = np.partition(a, (k - 1, k))
    return int((float(part[k - 1]) + float(part[k])) / 2)


def _all_distinct(a: np.ndarray) -> bool:
    """Whether no value of ``a`` repeats."""
    s = np.sort(a)
    return bool((s[1:] != s[:-1]).all())


def _filled_durations(pts: np.ndarray, dur: np.ndarray) -> np.ndarray:
    """Frame durations, with missing (zero) ones taken from the gap to the next frame or the median gap."""
    dur = dur.copy()
    missing = dur <= 0
    if missing.any():
        gaps = np.diff(pts)
        nominal = median_int(gaps[gaps > 0]) if (gaps > 0).any() else 1
        fill = np.append(gaps, nominal)
        fill = np.where(fill > 0, fill, nominal)
        dur = np.where(missing, fill, dur)
    return dur


def _start_keys(
    key_positions: np.ndarray, key_plan: np.ndarray, frame_pos: np.ndarray, frame_plan: np.ndarray
) -> np.ndarray:
    """For each frame, the position in the keyframe list of the keyframe decoding must start from."""
    # The last keyframe at or before the frame's packet in decode order ...
    start = np.searchsorted(key_positions, frame_pos, side="right") - 1
    # ... stepping back over keyframes shown after the frame (leading pictures of an open GOP).
    for _ in range(8):
        later = (start > 0) & (key_plan[np.maximum(start, 0)] > frame_plan)
        if not later.any():
            break
        start = np.where(later, start - 1, start)
    return np.maximum(start, 0)


def _indexing_stopped(exc: Exception) -> None:
    logger.warning("gpudecode: stopped indexing at damaged data: %s", exc)


def _scan_packets(container: Any, stream: Any) -> tuple[np.ndarray, ...]:
    """Demux every packet of ``stream`` once (no decoding); return pts, duration, key, discard, position arrays.

    A raw H.264/HEVC elementary stream has no timestamps: packet ``k`` (one picture each) gets ``k`` frame durations
    (the duration FFmpeg's parser derives from the SPS timing), the timestamps FFmpeg's CLI gives its frames, and
    only the first packet is a place to start decoding (the decoder numbers the pictures it outputs from there, see
    ``_backends._sequenced``).
    """
    pts_list: list[int] = []
    dur_list: list[int] = []
    key_list: list[bool] = []
    disc_list: list[bool] = []
    pos_list: list[int] = []
    raw = is_raw_stream(container)
    raw_dur = 0
    discard_other_streams(container, stream.index)  # the container then serves this stream alone anyway
    # damaged data (also ENOMEM from a damaged size field) ends the scan with a warning
    for pkt in demuxed(container, stream, _indexing_stopped):
        if pkt.size == 0 or pkt.stream_index != stream.index:
            continue
        ts = pkt.pts if pkt.pts is not None else pkt.dts
        if ts is None and raw:
            raw_dur = raw_dur or pkt.duration or raw_frame_duration(stream)  # the parser's, from the SPS timing
            ts = len(pts_list) * raw_dur
        elif ts is None:
            raise MediaError(
                "The video stream's packets carry no timestamps, so an exact index cannot be built. Use "
                "seek_mode='approximate' if the header gives a frame count or a duration."
            )
        pts_list.append(ts)
        dur_list.append(raw_dur if raw else (pkt.duration or 0))
        key_list.append(len(pts_list) == 1 if raw else pkt.is_keyframe)
        disc_list.append(pkt.is_discard)
        pos_list.append(-1 if pkt.pos is None else pkt.pos)
    return (
        np.array(pts_list, dtype=np.int64),
        np.array(dur_list, dtype=np.int64),
        np.array(key_list, dtype=bool),
        np.array(disc_list, dtype=bool),
        np.array(pos_list, dtype=np.int64),
    )


def _expand(table: np.ndarray, n: int) -> np.ndarray | None:
    """Run-length table ``(count, value)`` to one value per sample; ``None`` unless it covers exactly ``n`` samples.

    A table covering more or fewer samples than the track has is damaged (FFmpeg then ignores the runs that
    overflow, so its packets no longer match the table): the caller falls back to a packet scan. Checking the sum
    first also keeps a damaged count (billions) from allocating.
    """
    counts = table[:, 0].astype(np.int64)
    if counts.shape[0] == 0 or (counts < 0).any() or int(counts.sum()) != n:
        return None
    return np.repeat(table[:, 1], counts)


def _from_mp4_tables(stream: Any, info: Mp4Info, size_bytes: int | None) -> tuple[np.ndarray, ...] | None:
    """Per-packet arrays from FFmpeg's sample index plus the ``ctts`` table, or ``None`` when unsafe."""
    if info.fragmented:
        return None
    track = info.track(stream.id)
    stts = None if track is None else track.stts  # the tables are parsed at each access
    if track is None or stts is None or track.sample_count <= 0:
        return None
    entries = stream.index_entries
    n = len(entries)
    if n != track.sample_count:
        return None  # FFmpeg's edit-list handling added or removed entries: the tables no longer map 1:1.
    table = np.array([(e.timestamp, e.flags, e.pos, e.size) for e in entries], dtype=np.int64).reshape(n, 4)
    dts, flags, start = table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy()
    end = start + table[:, 3]
    deltas = _expand(stts, n)
    if deltas is None or (n > 1 and not np.array_equal(np.diff(dts), deltas[:-1])):
        return None
    ctts = track.ctts
    if ctts is not None:
        offsets = _expand(ctts, n)
        if offsets is None:
            return None
        # FFmpeg's mov demuxer shifts decode times by the most negative offset, ignoring the last two ctts entries
        # (mov_read_ctts: ``if (i+2<entries) mov_update_dts_shift(...)``).
        neg = ctts[:-2, 1]
        dts_shift = int(max(0, -int(neg.min()))) if neg.shape[0] else 0
        pts = dts + offsets + dts_shift
    else:
        pts = dts.copy()
    key = (flags & 1) != 0  # AVINDEX_KEYFRAME
    discard = (flags & 4) != 0  # AVINDEX_DISCARD_FRAME
    if size_bytes is not None:
        intact = end <= size_bytes
        if not intact.all():
            cut = int(np.argmin(intact))
            pts, deltas, key, discard, start = pts[:cut], deltas[:cut], key[:cut], discard[:cut], start[:cut]
            if cut == 0:
                return None
    return pts, deltas.astype(np.int64), key, discard, start


def _check_against_demux(container: Any, stream: Any, pts: np.ndarray, count: int = 6) -> bool:
    """Compare the first packets' pts with what the demuxer reports (cheap guard for the table path)."""
    seen: list[int] = []
    try:
        for pkt in demuxed(container, stream):
            if pkt.size == 0:
                continue
            seen.append(pkt.pts if pkt.pts is not None else pkt.dts)
            if len(seen) >= min(count, pts.shape[0]):
                break
    except (av.error.FFmpegError, OSError):
        return False
    return seen == [int(x) for x in pts[: len(seen)]]


def build_exact_index(
    open_stream: Callable[[], tuple[Any, Any]], mp4: Mp4Info | None, size_bytes: int | None, source_key: str
) -> FrameIndex:
    """Build the exact index of a video stream.

    ``open_stream`` returns a freshly opened ``(container, stream)`` pair each time it is called (the caller
    owns and closes the containers).
    Uses FFmpeg's sample index plus the ``ctts`` table for MP4/MOV files whose tables map one-to-one onto
    FFmpeg's index, and a single packet scan (no decoding) for everything else.

    Raises:
        MediaError: The stream has no frames, or no timestamps to index.
    """
    container, stream = open_stream()
    time_base = Fraction(stream.time_base.numerator, stream.time_base.denominator)
    if mp4 is not None:
        arrays = _from_mp4_tables(stream, mp4, size_bytes)
        if arrays is not None and _check_against_demux(container, stream, arrays[0]):
            arrays = _without_undecodable_lead(open_stream, *arrays)
            return _from_packets(*arrays, time_base, source_key, stream.index, "mp4-tables")
        if arrays is not None:
            logger.debug("gpudecode: MP4 tables disagree with the demuxer; scanning packets instead")
            container, stream = open_stream()  # the check consumed packets: scan from a fresh start
    arrays = _scan_packets(container, stream)
    if arrays[0].shape[0] == 0:
        raise MediaError("The video stream has no packets: there is nothing to decode.")
    arrays = _without_undecodable_lead(open_stream, *arrays)
    return _from_packets(*arrays, time_base, source_key, stream.index, "packet-scan")


def _without_undecodable_lead(
    open_stream: Callable[[], tuple[Any, Any]],
    pts: np.ndarray,
    dur: np.ndarray,
    key: np.ndarray,
    discard: np.ndarray,
    pos: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Mark the stream's lead pictures that FFmpeg's decoder outputs no frame for as not frames.

    A stream cut without re-encoding may start mid-GOP, or at an open-GOP keyframe (an HEVC CRA) whose leading
    pictures (RASL: after it in decode order, before it in presentation order) reference the GOP that was cut away.
    FFmpeg drops such pictures (their references are missing), so they are not frames of the stream; they are still
    fed, as discarded packets are. Which ones FFmpeg drops depends on the codec, so a short decode of that lead
    tells: the packets before the first keyframe, and those of its GOP shown before it.
    """
    if key.shape[0] == 0 or not key.any():
        return pts, dur, key, discard, pos
    first_key = int(np.argmax(key))
    later = np.flatnonzero(key[first_key + 1 :])
    gop_end = first_key + 1 + int(later[0]) if later.shape[0] else pts.shape[0]
    at = np.arange(pts.shape[0])
    lead = (at < first_key) | ((at < gop_end) & (pts < pts[first_key]))
    if not lead.any():
        return pts, dur, key, discard, pos
    last_lead = int(at[lead][-1])
    container, stream = open_stream()
    shown: set[int] = set()
    fed = 0
    try:
        for pkt in demuxed(container, stream):
            if pkt.size == 0:
                continue
            fed += 1
            with contextlib.suppress(av.error.FFmpegError):
                shown.update(f.pts for f in stream.codec_context.decode(pkt) if f.pts is not None)
            if fed > last_lead + 16:
                break
    except (av.error.FFmpegError, OSError):
        pass
    dropped = lead & ~np.isin(pts, np.fromiter(shown, dtype=np.int64, count=len(shown)))
    if dropped.any():
        before = int((dropped & (at < first_key)).sum())
        logger.debug(
            "gpudecode: %d packets before the first keyframe and %d of its leading pictures decode to nothing",
            before,
            int(dropped.sum()) - before,
        )
    return pts, dur, key, discard | dropped, pos
