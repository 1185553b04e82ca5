"""Presentation order of a stream's packets, and a decode timeline for streams whose timestamps do not give it.

Frame ``i`` of a stream is the ``i``-th frame FFmpeg's decoder outputs (what ``ffmpeg -fps_mode passthrough`` or
``ffprobe -show_frames`` list). For almost every file that is simply the frames sorted by presentation timestamp.
Files joined from segments without re-encoding (``ffmpeg -f concat -c copy``) are different: at each junction the
next segment's first timestamps overlap or step back below the previous segment's last ones, and a timestamp may
even occur twice. FFmpeg's decoders still output segment after segment (a new segment starts with an IDR/IRAP
picture, which flushes every earlier picture), each segment in timestamp order.

So the index splits the packets (in decode order) into **segments** at every keyframe shown before a packet
already read, and orders frames by (segment, pts). When that order is not the plain pts order, or a pts repeats,
timestamps no longer identify frames: the planner then works on a private **decode timeline** (frame ``i``'s
position in presentation order, times the nominal frame duration), and the demuxer stamps each packet, found by
its byte position, with its timeline value before it reaches a decoder. Users still see the real timestamps.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PacketTimeline", "played_at", "presentation_ranks", "segments_of"]


def presentation_ranks(pts: np.ndarray, is_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank every packet (given in decode order) in presentation order.

    Args:
        pts: Packet presentation timestamps, decode order, int64.
        is_key: Whether each packet is a keyframe.

    Returns:
        ``(rank, segment)``: each packet's position in presentation order, and the segment it belongs to (a new
        segment starts at every keyframe whose pts is below that of a packet read before it).
    """
    n = pts.shape[0]
    segment = np.zeros(n, dtype=np.int64)
    if n > 1:
        seen_max = np.maximum.accumulate(pts)[:-1]
        segment[1:] = np.cumsum(is_key[1:] & (pts[1:] < seen_max))
    order = np.lexsort((pts, segment))  # stable: equal timestamps keep their decode order
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, dtype=np.int64)
    return rank, segment


def segments_of(segment_starts: np.ndarray | None, num_frames: int) -> list[tuple[int, int]]:
    """``[first, stop)`` frame ranges of the segments (one range when ``segment_starts`` is ``None``)."""
    if segment_starts is None or segment_starts.shape[0] == 0:
        return [(0, num_frames)]
    bounds = [*segment_starts.tolist(), num_frames]
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


def played_at(pts: np.ndarray, end: np.ndarray, segments: list[tuple[int, int]], t: np.ndarray) -> np.ndarray:
    """Index of the frame shown at each time of ``t`` (same unit as ``pts``).

    Within a segment (timestamps ascending), the frame shown at ``t`` is the last one starting at or before it.
    Where segments overlap in time, the first segment (in frame order) still playing at ``t`` (its first frame
    starts at or before ``t``, its last frame ends after it) answers; a time no segment plays (a gap) gets the
    last frame starting at or before it, and a time before every frame the first frame.

    Args:
        pts: Frame start times, frame order.
        end: Frame end times (``pts + duration``), frame order.
        segments: The stream's segments (see :func:`segments_of`).
        t: Times to look up.

    Returns:
        Frame indices, int64, one per time.
    """
    if len(segments) == 1:
        return np.maximum(np.searchsorted(pts, t, side="right") - 1, 0).astype(np.int64)
    out = np.full(t.shape[0], -1, dtype=np.int64)
    for a, b in segments:
        seg_pts = pts[a:b]
        playing = (out < 0) & (t >= seg_pts[0]) & (t < end[a:b].max())
        out[playing] = a + np.searchsorted(seg_pts, t[playing], side="right") - 1
    rest = out < 0
    if rest.any():
        order = np.argsort(pts, kind="stable")
        k = np.maximum(np.searchsorted(pts[order], t[rest], side="right") - 1, 0)
        out[rest] = order[k]
    return out


@dataclass(frozen=True)
class PacketTimeline:
    """Stamps packets with their decode-timeline value (see the module docstring).

    Attributes:
        by_position: Packet byte position in the file -> timeline value.
        seek_pts: Keyframe timeline value -> the keyframe's real pts (what the demuxer seeks to).
    """

    by_position: dict[int, int]
    seek_pts: dict[int, int]

    @classmethod
    def build(cls, packet_pos: np.ndarray, nominal: int, key_plan: np.ndarray, key_pts: np.ndarray) -> PacketTimeline:
        """From the index: packet positions in presentation order, the timeline step, the keyframes' values."""
        by_position = {int(p): r * nominal for r, p in enumerate(packet_pos.tolist())}
        return cls(by_position, dict(zip(key_plan.tolist(), key_pts.tolist(), strict=True)))

    def stamp(self, packets: Iterator[Any]) -> Iterator[Any]:
        """Give each packet its timeline value as pts (``None`` for a packet the index does not know)."""
        for pkt in packets:
            pkt.pts = self.by_position.get(pkt.pos)
            pkt.dts = None
            yield pkt
