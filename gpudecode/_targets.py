"""How the planner finds a request's frames: by exact pts from an index, or by time from the container's index.

The planner's loop (seek, feed packets, take outputs, drain) is the same in both seek modes; what differs is asked of
one of these objects, chosen when the decoder opens (``_seek_mode``):

* :class:`ExactTargets` (``seek_mode="exact"``): a target is a frame's own pts; the keyframe each decode starts from
  comes with it (the index's ``start_key``), and the demuxer is checked to land at or before that keyframe.
* :class:`TimeTargets` (``seek_mode="approximate"``): a target is a time; the frame chosen is the first whose
  ``pts + duration`` exceeds it, keyframes come from the container's own index (if any), and a seek that lands past
  the target (an overshoot) is retried from further back.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import av
import numpy as np
import torch

__all__ = [
    "NO_INDEX_KEY",
    "DecodedFrame",
    "Demuxer",
    "Emit",
    "ExactTargets",
    "Position",
    "Targets",
    "TimeTargets",
    "chain",
    "close_iterator",
]

logger = logging.getLogger("gpudecode")

NO_INDEX_KEY = 1 << 62  # the keyframe "needed" when there is no index at all: always seek unless positioned before
Emit = Callable[[int, "DecodedFrame | torch.Tensor", int, int], None]  # (target, frame or RGB tensor, pts, duration)


@dataclass
class Position:
    """Where the decoder stands between calls.

    Attributes:
        packets: The packet iterator from the last seek (``None``: the next request seeks).
        cur_key: The ordinal of the last keyframe fed.
        last_pts: The pts of the last frame the decoder output.
        last_end: That frame's end (``pts + duration``; time targets only).
        at_start: The packets started at the stream's first packet.
        skipped: Pts of packets left undecoded since the last seek.
        outputs: A sequence's decoder outputs still to be taken (see ``Planner.run_sequence``).
        sequence_owner: Who may continue that sequence.
        sequence_key: The keyframe the last seek opened exactly at (``None``: it opened elsewhere, by time, or the
            packets restarted); another seek for that keyframe would decode the same outputs again.
        sequence_end: The latest end (``pts + duration``) among a sequence's outputs decoded since that seek.
    """

    packets: Iterator[av.Packet] | None = None
    cur_key: int = -1
    last_pts: int | None = None
    last_end: int | None = None
    at_start: bool = False
    skipped: set[int] = field(default_factory=set)
    outputs: Iterator[DecodedFrame] | None = None
    sequence_owner: object | None = None
    sequence_key: int | None = None
    sequence_end: int | None = None


def close_iterator(packets: Iterator[object] | None) -> None:
    """Close a suspended packet generator so the demuxer releases the packet it holds (before its container)."""
    close = getattr(packets, "close", None)
    if close is not None:
        close()


def chain(first: av.Packet | None, rest: Iterator[av.Packet]) -> Iterator[av.Packet]:
    """``first`` (unless ``None``), then ``rest``."""
    if first is not None:
        yield first
    yield from rest


class Demuxer(Protocol):
    """Packet source with seeking.

    Its packet iterators never raise: they end where the data cannot be read on, and ``error`` says why the latest
    one ended there (``None`` while it runs, or where it ran to the end of the stream).
    """

    error: str | None

    def seek(self, pts: int) -> Iterator[av.Packet]:
        """Seek to the keyframe at or before ``pts``; return an iterator over packets from there."""

    def restart(self) -> Iterator[av.Packet]:
        """Return an iterator over packets from the very start of the stream."""

    def close(self) -> None:
        """Release the container (the demuxer is not used again)."""


class DecodedFrame(Protocol):
    """What a backend's ``decode``/``flush`` return: an opaque frame with integer timestamps."""

    pts: int | None
    duration: int | None


class Targets(Protocol):
    """What the planner asks of its seek mode."""

    may_overshoot: bool

    def key_of_packet(self, pkt: av.Packet) -> int:
        """The ordinal of the keyframe ``pkt`` (a keyframe) is."""

    def need_key(self, target: int, start_key: int | None) -> int:
        """The keyframe ordinal a decode toward ``target`` must start from."""

    def open_at(
        self, demuxer: Demuxer, key: int, target: int, margin_factor: int
    ) -> tuple[Iterator[av.Packet], bool, int]:
        """Seek toward keyframe ``key`` / time ``target``.

        Returns:
            The packets, whether they start at the stream's first packet, and the keyframe ordinal they start at.
        """

    def lands_on(self, key: int, margin_factor: int) -> bool:
        """Whether :meth:`open_at` for keyframe ``key`` opens exactly there, whatever the target time."""

    def must_seek(self, pos: Position, need: int, target: int, nominal: int) -> bool:
        """Whether reaching ``target`` (needing keyframe ``need``) takes a seek from ``pos``."""

    def behind(self, pos: Position, target: int) -> bool:
        """Whether the decoder has already passed ``target``."""

    def was_skipped(self, pos: Position, target: int, nominal: int) -> bool:
        """Whether ``target``'s frame may be one left undecoded since the last seek."""

    def wanted(self, targets: np.ndarray, nominal: int) -> Callable[[av.Packet], bool]:
        """Whether a packet may carry a frame this call or a later forward call wants."""

    def match(
        self, f: DecodedFrame, targets: np.ndarray, j: int, emit: Emit, missing: list[int], pos: Position, nominal: int
    ) -> tuple[int, bool]:
        """Emit the targets from ``j`` on that decoder output ``f`` answers.

        Returns:
            The next target, and whether ``f`` answered any (it was converted).
        """

    def groups(self, targets: np.ndarray, start_keys: np.ndarray | None, nominal: int) -> list[tuple[int, int, int]]:
        """Split sorted targets into independent decode runs: ``(first, stop, cost)``."""


@dataclass
class ExactTargets:
    """Targets are frames' own pts; keyframes are the index's, in decode order.

    Attributes:
        key_pts: The keyframes' pts in decode order.
    """

    key_pts: np.ndarray
    may_overshoot: bool = False  # the demuxer is checked to land at or before the keyframe

    def key_of_packet(self, pkt: av.Packet) -> int:
        """The index's ordinal of the keyframe at or before the packet's pts."""
        ts = pkt.pts if pkt.pts is not None else pkt.dts
        if ts is None:
            return -1
        return int(np.searchsorted(self.key_pts, ts, side="right")) - 1

    def need_key(self, target: int, start_key: int | None) -> int:
        """The index's start keyframe for the target."""
        assert start_key is not None
        return start_key

    def open_at(
        self, demuxer: Demuxer, key: int, target: int, margin_factor: int
    ) -> tuple[Iterator[av.Packet], bool, int]:
        """Seek to keyframe ``key``, stepping back where the demuxer lands late; restart where nothing works.

        Demuxers may compare the seek time with decode timestamps (FFmpeg's mov demuxer does), landing one keyframe
        late; the first packet must be a keyframe at or before the wanted one. Others land inside a GOP (MPEG-TS
        seeks land on the packet whose decode timestamp is the keyframe's pts: the one after it); there the packets
        up to the next keyframe are passed over unread by the decoder. The seeks go to keyframes ``key``,
        ``key - 1``, ``key - 2``, ``key - 4``, ``key - 8`` and ``key - 16`` (never before the first), and stop at the
        first that lands right; after the first keyframe fails, or all of them, the packets restart from the first.
        They start at the stream's first packet after a restart or when the seek to the first keyframe lands right.
        """
        key = k = max(key, 0)
        first = None
        packets: Iterator[av.Packet] | None = None
        for back in (0, 1, 2, 4, 8, 16):
            k = max(key - back, 0)
            packets = demuxer.seek(int(self.key_pts[k]))
            first = next(packets, None)
            while first is not None and not first.is_keyframe:  # inside a GOP: on to its next keyframe
                first = next(packets, None)
            if first is not None and (first.pts is None or self._lands_on_key(first.pts, key)):
                break
            if k == 0:
                first = None
                break
        else:
            first = None
        restarted = first is None
        if restarted:
            logger.debug("gpudecode: seeks toward keyframe %d overshot; restarting from the first packet", key)
            packets = demuxer.restart()
            first = next(packets, None)
        assert packets is not None
        return chain(first, packets), restarted or k == 0, key

    def _lands_on_key(self, pts: int, key: int) -> bool:
        """A landing keyframe is one of the index's, at or before keyframe ``key``.

        Other timestamps mean the demuxer's packets after the seek are stamped wrong (FFmpeg's MPEG-PS demuxer
        re-frames the stream with its parser and can pin a timestamp to the wrong packet there): frames matched
        by those timestamps would be the wrong frames.
        """
        return pts <= self.key_pts[key] and int(self.key_pts[np.searchsorted(self.key_pts, pts)]) == pts

    def lands_on(self, key: int, margin_factor: int) -> bool:
        """Always: seeks go to the index's keyframes (stepping back where a demuxer lands late)."""
        return True

    def must_seek(self, pos: Position, need: int, target: int, nominal: int) -> bool:
        """Whenever the start keyframe lies beyond the last one fed."""
        return need > pos.cur_key

    def behind(self, pos: Position, target: int) -> bool:
        """The last output is at or past the target's pts."""
        return pos.last_pts is not None and target <= pos.last_pts

    def was_skipped(self, pos: Position, target: int, nominal: int) -> bool:
        """The target's own packet was skipped."""
        return target in pos.skipped

    def wanted(self, targets: np.ndarray, nominal: int) -> Callable[[av.Packet], bool]:
        """Packets shown after the last target, or requested."""
        last = int(targets[-1]) if targets.shape[0] else 0
        wanted_pts = set(targets.tolist())
        return lambda pkt: pkt.pts is None or pkt.pts > last or pkt.pts in wanted_pts

    def match(
        self, f: DecodedFrame, targets: np.ndarray, j: int, emit: Emit, missing: list[int], pos: Position, nominal: int
    ) -> tuple[int, bool]:
        """Targets before the output's pts were never output (missing); the one at its pts is emitted."""
        p = f.pts
        n = targets.shape[0]
        while j < n and targets[j] < p:
            missing.append(j)
            j += 1
        if j < n and targets[j] == p:
            emit(j, f, p, f.duration or 0)
            return j + 1, True
        return j, False

    def groups(self, targets: np.ndarray, start_keys: np.ndarray | None, nominal: int) -> list[tuple[int, int, int]]:
        """A new run where a target's start keyframe lies beyond the previous target's keyframe interval."""
        if start_keys is None:  # nothing to split by
            return [(0, int(targets.shape[0]), int(targets.shape[0]))]
        gop = np.searchsorted(self.key_pts, targets, side="right") - 1
        brk = np.nonzero(start_keys[1:] > gop[:-1])[0] + 1
        return _runs(targets, brk, self.key_pts[start_keys], nominal)


@dataclass
class TimeTargets:
    """Targets are times; keyframes come from the container's index (``key_of`` ``None``: it has none).

    Attributes:
        key_of: Maps a timestamp to the ordinal of the keyframe at or before it, or ``None``.
        key_ts: The timestamp to seek to for a keyframe ordinal, or ``None``.
        seek_margin: How far before a target time to seek (covers the decode-to-presentation delay of B-frames,
            since some demuxers seek by decode timestamp).
        begin_pts: The header's start time; a seek there cannot overshoot.
    """

    key_of: Callable[[int], int] | None = None
    key_ts: Callable[[int], int] | None = None
    seek_margin: int = 0
    begin_pts: int = 0
    may_overshoot: bool = True

    def key_of_packet(self, pkt: av.Packet) -> int:
        """The container index's ordinal for the packet's decode time (-1 without an index)."""
        ts = pkt.pts if pkt.pts is not None else pkt.dts
        if ts is None or self.key_of is None:
            return -1
        return self.key_of(pkt.dts if pkt.dts is not None else ts)

    def need_key(self, target: int, start_key: int | None) -> int:
        """The keyframe at or before a margin before the target."""
        if self.key_of is not None:
            return self.key_of(target - self.seek_margin)
        return NO_INDEX_KEY

    def open_at(
        self, demuxer: Demuxer, key: int, target: int, margin_factor: int
    ) -> tuple[Iterator[av.Packet], bool, int]:
        """Seek to the container's keyframe ``key``; after an overshoot, ``margin_factor`` margins before ``target``.

        A seek to the stream's start is at the start (nothing can overshoot there). Without a container index, only
        where its first packet can be the stream's first (see :meth:`_starts`); otherwise it landed inside the first
        GOP (MPEG-TS: FFmpeg seeks by decode timestamp and lands after the first keyframe, and may flag a P-frame as
        a keyframe), the decoder would give a later frame than the target, undetected, and the packets restart from
        the first instead.
        """
        seek_to = max(target - self.seek_margin * margin_factor, self.begin_pts)
        if self.lands_on(key, margin_factor):
            # Seek exactly to the keyframe the container's index names, so no GOP is decoded twice.
            seek_to = max(self.key_ts(key), self.begin_pts)  # type: ignore[misc]
        packets = demuxer.seek(seek_to)
        at_start = seek_to <= self.begin_pts
        if not at_start or key < NO_INDEX_KEY:  # with a container index the seek lands on one of its keyframes
            return packets, at_start, key
        first = next(packets, None)
        if first is not None and not self._starts(first):
            logger.debug("gpudecode: a seek to the start landed after it; restarting from the first packet")
            return demuxer.restart(), True, key
        return chain(first, packets), True, key

    def _starts(self, pkt: av.Packet) -> bool:
        """Whether ``pkt`` can be the stream's first: decoded before the start, or a keyframe shown at or before it."""
        if pkt.dts is not None and pkt.dts < self.begin_pts:
            return True
        return bool(pkt.is_keyframe) and pkt.pts is not None and pkt.pts <= self.begin_pts

    def lands_on(self, key: int, margin_factor: int) -> bool:
        """Where the container's index names keyframe ``key``'s time: a first try (not a retry further back)."""
        return margin_factor == 1 and self.key_ts is not None and 0 <= key < NO_INDEX_KEY

    def must_seek(self, pos: Position, need: int, target: int, nominal: int) -> bool:
        """Where the keyframe lies beyond the last fed; without an index, over gaps of more than two frames."""
        if need <= pos.cur_key:
            return False
        if self.key_of is None and pos.last_pts is not None:
            return target - pos.last_pts > 2 * nominal
        return True

    def behind(self, pos: Position, target: int) -> bool:
        """The last output already covers the target (it ends after it)."""
        if pos.last_pts is None:
            return False
        return target < (pos.last_end if pos.last_end is not None else pos.last_pts)

    def was_skipped(self, pos: Position, target: int, nominal: int) -> bool:
        """A skipped packet lies within two frames of the target."""
        slack = 2 * nominal
        return any(target - slack <= p <= target + slack for p in pos.skipped)

    def wanted(self, targets: np.ndarray, nominal: int) -> Callable[[av.Packet], bool]:
        """Packets shown after the last target's slack, or within two frames of a target."""
        last = int(targets[-1]) if targets.shape[0] else 0
        slack = 2 * nominal

        def near(pkt: av.Packet) -> bool:
            if pkt.pts is None or pkt.pts > last - slack:
                return True
            # any target within [pts - slack, pts + duration + slack]
            lo = int(np.searchsorted(targets, pkt.pts - slack, side="left"))
            return lo < targets.shape[0] and targets[lo] <= pkt.pts + (pkt.duration or 0) + slack

        return near

    def match(
        self, f: DecodedFrame, targets: np.ndarray, j: int, emit: Emit, missing: list[int], pos: Position, nominal: int
    ) -> tuple[int, bool]:
        """Every target before the output's end is shown by it."""
        p = f.pts
        d = f.duration if f.duration else nominal
        pos.last_end = p + d
        n = targets.shape[0]
        k = j
        while k < n and targets[k] < p + d:
            emit(k, f, p, d)
            k += 1
        return k, k > j

    def groups(self, targets: np.ndarray, start_keys: np.ndarray | None, nominal: int) -> list[tuple[int, int, int]]:
        """A new run where a target's keyframe lies beyond the previous target's; one run without an index."""
        n = int(targets.shape[0])
        if self.key_of is None:
            return [(0, n, n)]
        key_of = self.key_of
        need = np.array([self.need_key(int(t), None) for t in targets])
        gop = np.array([key_of(int(t)) for t in targets])
        brk = np.nonzero(need[1:] > gop[:-1])[0] + 1
        return _runs(targets, brk, targets - self.seek_margin, nominal)


def _runs(targets: np.ndarray, brk: np.ndarray, starts_pts: np.ndarray, nominal: int) -> list[tuple[int, int, int]]:
    """``(first, stop, cost)`` per run between the break points; cost estimates the frames a run decodes."""
    bounds = [0, *brk.tolist(), int(targets.shape[0])]
    out = []
    for a, b in itertools.pairwise(bounds):
        cost = int((int(targets[b - 1]) - int(starts_pts[a])) // max(1, nominal)) + 1
        out.append((a, b, max(cost, 1)))
    return out
