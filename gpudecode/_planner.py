"""The decode planner shared by every backend.

The planner turns requested frames into work: sort and de-duplicate the targets, decide per target whether
decoding can continue forward or must seek to a keyframe, feed packets, pick the decoder outputs that were
asked for, and hand only those to the backend for color conversion. A backend only turns packets into frames
(``decode``/``flush``/``reset``) and converts kept frames (``convert``); it never decides what to decode.
Because all decisions live here, the NVDEC path is tested by the same logic that CPU tests exercise.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import av
import numpy as np

from gpudecode._backends._base import Backend
from gpudecode._errors import DecodeError

__all__ = ["Demuxer", "PlanStats", "Planner"]

logger = logging.getLogger("gpudecode")


class Demuxer(Protocol):
    """Packet source with seeking."""

    def seek(self, pts: int) -> Iterator[Any]:
        """Seek to the keyframe at or before ``pts``; return an iterator over packets from there."""

    def restart(self) -> Iterator[Any]:
        """Return an iterator over packets from the very start of the stream."""

    def close(self) -> None:
        """Release the container (the demuxer is not used again)."""


@dataclass
class PlanStats:
    """Counters of the last planned decode (used by tests and benchmarks).

    Attributes:
        seeks: Seeks performed.
        packets_fed: Packets given to the backend.
        frames_decoded: Frames the backend returned.
        frames_converted: Frames converted to RGB.
    """

    seeks: int = 0
    packets_fed: int = 0
    frames_decoded: int = 0
    frames_converted: int = 0

    def add(self, other: PlanStats) -> None:
        """Accumulate another decode's counters (runs decoded in parallel)."""
        self.seeks += other.seeks
        self.packets_fed += other.packets_fed
        self.frames_decoded += other.frames_decoded
        self.frames_converted += other.frames_converted


@dataclass
class _Position:
    packets: Iterator[Any] | None = None
    cur_key: int = -1
    last_pts: int | None = None
    last_end: int | None = None
    at_start: bool = False
    skipped: set[int] = field(default_factory=set)  # pts of packets left undecoded since the last seek
    outputs: Iterator[Any] | None = None  # a sequence's decoder outputs still to be taken (see run_sequence)
    sequence_owner: object | None = None  # who may continue that sequence


@dataclass
class Planner:
    """Plans and runs decodes for one stream; keeps the decode position between calls.

    Attributes:
        demuxer: Where packets come from.
        backend: What decodes them.
        key_pts: Exact mode: keyframe pts in decode order. ``None`` in approximate mode.
        approx_key_of: Approximate mode: maps a timestamp to the ordinal of the keyframe at or before it
            (``None`` when the container has no index; then every new request seeks).
        approx_key_ts: Approximate mode: the timestamp to seek to for a keyframe ordinal.
        nominal_duration: Frame duration used when a frame carries none (time-base units).
        seek_margin: Approximate mode: how far before a target time to seek (covers the decode-to-presentation
            delay of B-frames, since some demuxers seek by decode timestamp).
        begin_pts: Approximate mode: the header's start time; a seek there cannot overshoot.
    """

    demuxer: Demuxer
    backend: Backend
    key_pts: np.ndarray | None = None
    approx_key_of: Callable[[int], int] | None = None
    approx_key_ts: Callable[[int], int] | None = None
    nominal_duration: int = 1
    seek_margin: int = 0
    begin_pts: int = 0
    stats: PlanStats = field(default_factory=PlanStats)
    _pos: _Position = field(default_factory=_Position)

    def invalidate(self) -> None:
        """Forget the decode position (the next request seeks); release the suspended packet iterator."""
        _close(self._pos.outputs)
        _close(self._pos.packets)
        self._pos = _Position()

    # -- key ordinals ------------------------------------------------------------------------------------
    def _key_of_packet(self, pkt: Any) -> int:
        ts = pkt.pts if pkt.pts is not None else pkt.dts
        if ts is None:
            return -1
        if self.key_pts is not None:
            return int(np.searchsorted(self.key_pts, ts, side="right")) - 1
        if self.approx_key_of is not None:
            return self.approx_key_of(pkt.dts if pkt.dts is not None else ts)
        return -1

    def _reposition(self) -> _Position:
        """Common part of every seek: drop the packet iterator, the decoder state and what was skipped."""
        pos = self._pos
        self.stats.seeks += 1
        _close(pos.outputs)
        _close(pos.packets)
        pos.packets = pos.outputs = None
        self.backend.reset()
        pos.last_pts = pos.last_end = None
        pos.skipped = set()
        return pos

    def _seek(self, key: int, target: int, margin_factor: int = 1) -> None:
        pos = self._reposition()
        if self.key_pts is not None:
            # Demuxers may compare the seek time with decode timestamps (FFmpeg's mov demuxer does), landing one
            # keyframe late; step back over earlier keyframes before restarting from the first packet.
            first = None
            packets: Iterator[Any] | None = None
            for back in (0, 1, 2, 4, 8, 16):
                k = max(key - back, 0)
                seek_pts = int(self.key_pts[k])
                packets = self.demuxer.seek(seek_pts)
                first = next(packets, None)
                if first is not None and first.is_keyframe and (first.pts is None or first.pts <= self.key_pts[key]):
                    break
                if k == 0:
                    first = None
                    break
            else:
                first = None
            if first is None:
                logger.debug("gpudecode: seeks toward keyframe %d overshot; restarting from the first packet", key)
                packets = self.demuxer.restart()
                first = next(packets, None)
            assert packets is not None
            pos.packets = _chain(first, packets)
            pos.at_start = key == 0
        else:
            seek_to = max(target - self.seek_margin * margin_factor, self.begin_pts)
            if margin_factor == 1 and self.approx_key_ts is not None and 0 <= key < (1 << 62):
                # Seek exactly to the keyframe the container's index names, so no GOP is decoded twice.
                seek_to = max(self.approx_key_ts(key), self.begin_pts)
            pos.packets = self.demuxer.seek(seek_to)
            pos.at_start = seek_to <= self.begin_pts
        pos.cur_key = key

    def _restart(self) -> None:
        pos = self._reposition()
        pos.packets = self.demuxer.restart()
        pos.at_start = True
        pos.cur_key = 0 if self.key_pts is not None else -1

    def _need_key(self, target: int, start_key: int | None) -> int:
        if start_key is not None:
            return start_key
        if self.approx_key_of is not None:
            return self.approx_key_of(target - self.seek_margin)
        return 1 << 62  # no index: always seek unless already positioned before the target

    # -- running -----------------------------------------------------------------------------------------
    def run(
        self,
        targets: np.ndarray,
        start_keys: np.ndarray | None,
        emit: Callable[[int, Any, int, int], None],
    ) -> list[int]:
        """Decode the frames for sorted, unique ``targets`` (time-base units).

        Exact mode (``start_keys`` given): a target is a frame's exact pts. Approximate mode: a target is a time;
        the frame chosen is the first whose ``pts + duration`` exceeds it (the last frame for times past the
        real end of a stream whose header over-counts).

        ``emit(j, frame, pts, duration)`` receives each target's frame, in target order, before the next packet is
        fed: either the backend's frame (convert it now; hardware decoders reuse surfaces) or, for a frame held
        across a drain, an already converted ``(H, W, 3)`` tensor. The same frame may be emitted for several
        targets in a row (approximate mode).

        Returns:
            Positions in ``targets`` that no decoder output matched (damaged or missing frames).
        """
        exact = start_keys is not None
        n = int(targets.shape[0])
        missing: list[int] = []
        if self._pos.outputs is not None:  # a sequence holds frames taken from the decoder: start afresh
            self.invalidate()
        wanted = self._wanted_fn(targets, exact)
        pos = self._pos
        j = 0
        overshoots = 0
        while j < n:
            tgt = int(targets[j])
            need = self._need_key(tgt, int(start_keys[j]) if exact else None)
            # Behind: the last decoder output is at or past the target (approximate: it already covers it).
            behind = pos.last_pts is not None and (
                tgt <= pos.last_pts if exact else tgt < (pos.last_end if pos.last_end is not None else pos.last_pts)
            )
            behind = behind or self._was_skipped(tgt, exact)
            if pos.packets is None or behind or self._must_seek(need, tgt):
                if overshoots > 3:
                    self._restart()
                else:
                    self._seek(max(need, 0) if exact else need, tgt, 4**overshoots)
            first_after_seek = pos.last_pts is None and not pos.at_start
            eof = True
            overshoot = False
            last_frame: Any = None
            assert pos.packets is not None
            for pkt in _safe(pos.packets):
                if pkt.is_keyframe:
                    k = self._key_of_packet(pkt)
                    if k > pos.cur_key:
                        pos.cur_key = k
                self.stats.packets_fed += 1
                want = wanted(pkt)
                if not want and pkt.pts is not None and self.backend.skips_unwanted:
                    pos.skipped.add(int(pkt.pts))
                frames = self._feed(pkt, want)
                for f in frames:
                    if first_after_seek and not exact and f.pts is not None and f.pts > int(targets[j]):
                        overshoot = True
                        break
                    first_after_seek = False
                    j = self._match(f, targets, j, exact, emit, missing)
                    last_frame = f
                if overshoot:
                    break
                if j >= n:
                    eof = False
                    break
                nxt = int(targets[j])
                if self._must_seek(self._need_key(nxt, int(start_keys[j]) if exact else None), nxt):
                    eof = False
                    break
            if eof and first_after_seek and not exact and overshoots <= 3:
                overshoot = True  # nothing at all after the seek: it landed past the stream's last keyframe
            if overshoot:
                overshoots += 1
                _close(pos.packets)
                pos.packets = None
                continue
            if eof:
                held = None
                if not exact and j < n and last_frame is not None:
                    # Convert before draining: a hardware decoder may reuse the surface.
                    held = (
                        self.backend.convert(last_frame),
                        last_frame.pts,
                        last_frame.duration or self.nominal_duration,
                    )
                frames = self._drain()
                last_flushed = None
                for f in frames:
                    j = self._match(f, targets, j, exact, emit, missing)
                    if f.pts is not None:
                        last_flushed = f
                if not exact and j < n and last_flushed is not None:  # the drained tail is the newest frame
                    f = last_flushed
                    held = (self.backend.convert(f), f.pts, f.duration or self.nominal_duration)
                while j < n:
                    if held is not None:
                        emit(j, held[0], int(held[1]), int(held[2]))
                    else:
                        missing.append(j)
                    j += 1
                _close(pos.packets)
                pos.packets = None
                pos.last_pts = pos.last_end = None
        return missing

    def run_sequence(
        self,
        target: int,
        count: int,
        step: int,
        emit: Callable[[int, Any, int, int], None],
        owner: object | None = None,
    ) -> int:
        """Approximate mode: emit ``count`` decoder outputs in a row, every ``step``-th.

        The first is the frame shown at ``target``; or, when ``owner`` ran the previous sequence and nothing
        decoded since, the output right after that sequence's last (iteration in chunks). Frames are taken in
        the order the decoder outputs them, so a stream whose timestamps step back (segments joined without
        re-encoding) still gives each frame once. ``emit`` is called as in :meth:`run`.

        Outputs past the end of the stream (a header that over-counts) repeat its last frame.

        Returns:
            How many were emitted: ``count``, or 0 when the decoder output nothing at all.
        """
        pos = self._pos
        if owner is None or pos.outputs is None or pos.sequence_owner is not owner:
            self._seek(self._need_key(target, None), target)
            pos.outputs = self._outputs(target)
        pos.sequence_owner = owner
        outputs = pos.outputs
        assert outputs is not None
        j = k = 0
        f = last = None
        while j < count:
            f = next(outputs, None)
            if f is None:
                break
            last = f
            if k % step == 0:
                self.stats.frames_converted += 1
                emit(j, f, int(f.pts), int(f.duration or self.nominal_duration))
                j += 1
            k += 1
        if last is None and j < count:
            return self._repeat_shown_at(target, j, count, emit)
        while last is not None and j < count:
            emit(j, last, int(last.pts), int(last.duration or self.nominal_duration))
            j += 1
        return j

    def _repeat_shown_at(self, target: int, j: int, count: int, emit: Callable[[int, Any, int, int], None]) -> int:
        """Emit the frame shown at ``target`` as outputs ``j`` to ``count - 1``; return how many were emitted in all.

        For a sequence with nothing left to take: it starts past the real end of a stream whose header over-counts,
        or an earlier part of it (an iterator's previous chunk) reached that end. :meth:`run` finds that frame (the
        last one) and converts it while it is valid; the other outputs copy it.
        """
        taken: list[tuple[Any, int, int]] = []

        def take(_k: int, frame: Any, pts: int, duration: int) -> None:
            emit(j, frame, pts, duration)
            taken.append((frame, pts, duration))

        self.run(np.array([target], dtype=np.int64), None, take)
        if not taken:
            return j
        frame, pts, duration = taken[0]
        for k in range(j + 1, count):
            emit(k, frame, pts, duration)
        return count

    def _outputs(self, target: int) -> Iterator[Any]:
        """Decoder outputs from the frame shown at ``target`` on, to the end of the stream (seeking as needed)."""
        pos = self._pos
        for attempt in range(5):
            first = not pos.at_start
            for f in self._decoded(pos):
                if first and f.pts > target and attempt < 4:
                    break  # the seek landed after the target: seek again from further back
                first = False
                if f.pts + (f.duration or self.nominal_duration) > target:
                    yield f
                    target = -(1 << 62)  # found: take every later output
            else:
                if not first or attempt == 4:
                    return
                # nothing at all after the seek: it landed past the last keyframe; seek from further back
            running, pos.outputs = pos.outputs, None  # a seek closes pos.outputs: not this running generator
            self._seek(self._need_key(target, None), target, 4 ** (attempt + 1))
            pos.outputs = running

    def _decoded(self, pos: _Position) -> Iterator[Any]:
        """Every frame the backend returns for the packets from ``pos`` on, then the drained ones."""
        assert pos.packets is not None
        for pkt in _safe(pos.packets):
            self.stats.packets_fed += 1
            for f in self._feed(pkt, True):
                self.stats.frames_decoded += 1
                if f.pts is not None:
                    pos.last_pts = f.pts
                    yield f
        for f in self._drain():
            self.stats.frames_decoded += 1
            if f.pts is not None:
                yield f

    def _feed(self, pkt: Any, want: bool) -> Sequence[Any]:
        """Give the backend one packet; a packet it rejects (damaged data) yields no frames."""
        try:
            return self.backend.decode(pkt, want)
        except DecodeError as exc:
            logger.debug("gpudecode: skipping a packet the decoder rejected: %s", exc)
            return ()

    def _drain(self) -> Sequence[Any]:
        """Drain the backend at the end of the stream; a decoder failing there yields no more frames."""
        try:
            return self.backend.flush()
        except DecodeError as exc:
            logger.warning("gpudecode: decoder failed while draining: %s", exc)
            return ()

    def _wanted_fn(self, targets: np.ndarray, exact: bool) -> Callable[[Any], bool]:
        """Whether a packet may carry a frame this call or a later forward call wants.

        Only packets shown before this call's last target, and not requested, may be skipped (when unreferenced):
        a later request continuing forward therefore never needs a skipped frame.
        """
        last = int(targets[-1]) if targets.shape[0] else 0
        if exact:
            wanted_pts = set(targets.tolist())
            return lambda pkt: pkt.pts is None or pkt.pts > last or pkt.pts in wanted_pts
        slack = 2 * self.nominal_duration

        def near(pkt: Any) -> bool:
            if pkt.pts is None or pkt.pts > last - slack:
                return True
            # any target within [pts - slack, pts + duration + slack]
            lo = int(np.searchsorted(targets, pkt.pts - slack, side="left"))
            return lo < targets.shape[0] and targets[lo] <= pkt.pts + (pkt.duration or 0) + slack

        return near

    def groups(self, targets: np.ndarray, start_keys: np.ndarray | None) -> list[tuple[int, int, int]]:
        """Split sorted targets into independent decode runs: ``(first, stop, cost)`` slices of ``targets``.

        A new run starts where reaching the next target needs a seek (its start keyframe lies beyond the keyframe
        interval of the previous target); ``cost`` estimates the frames a run decodes.
        """
        n = int(targets.shape[0])
        if n == 0:
            return []
        if start_keys is not None and self.key_pts is not None:
            gop = np.searchsorted(self.key_pts, targets, side="right") - 1
            brk = np.nonzero(start_keys[1:] > gop[:-1])[0] + 1
            starts_pts = self.key_pts[start_keys]
        elif self.approx_key_of is not None:
            need = np.array([self._need_key(int(t), None) for t in targets])
            gop = np.array([self.approx_key_of(int(t)) for t in targets])
            brk = np.nonzero(need[1:] > gop[:-1])[0] + 1
            starts_pts = targets - self.seek_margin
        else:
            return [(0, n, n)]
        bounds = [0, *brk.tolist(), n]
        out = []
        for a, b in itertools.pairwise(bounds):
            cost = int((int(targets[b - 1]) - int(starts_pts[a])) // max(1, self.nominal_duration)) + 1
            out.append((a, b, max(cost, 1)))
        return out

    def _was_skipped(self, target: int, exact: bool) -> bool:
        skipped = self._pos.skipped
        if not skipped:
            return False
        if exact:
            return target in skipped
        slack = 2 * self.nominal_duration
        return any(target - slack <= p <= target + slack for p in skipped)

    def _must_seek(self, need: int, target: int) -> bool:
        pos = self._pos
        if need <= pos.cur_key:
            return False
        if self.key_pts is None and self.approx_key_of is None and pos.last_pts is not None:
            # No index at all: keep decoding forward over short gaps.
            return target - pos.last_pts > 2 * self.nominal_duration
        return True

    def _match(
        self,
        f: Any,
        targets: np.ndarray,
        j: int,
        exact: bool,
        emit: Callable[[int, Any, int, int], None],
        missing: list[int],
    ) -> int:
        self.stats.frames_decoded += 1
        p = f.pts
        if p is None:
            return j
        self._pos.last_pts = p
        n = targets.shape[0]
        if exact:
            while j < n and targets[j] < p:
                missing.append(j)
                j += 1
            if j < n and targets[j] == p:
                self.stats.frames_converted += 1
                emit(j, f, p, f.duration or 0)
                j += 1
            return j
        d = f.duration if f.duration else self.nominal_duration
        self._pos.last_end = p + d
        first = True
        while j < n and targets[j] < p + d:
            if first:
                self.stats.frames_converted += 1
                first = False
            emit(j, f, p, d)
            j += 1
        return j


def _close(packets: Iterator[Any] | None) -> None:
    """Close a suspended packet generator so the demuxer releases the packet it holds (before its container)."""
    close = getattr(packets, "close", None)
    if close is not None:
        close()


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    if first is not None:
        yield first
    yield from rest


def _safe(packets: Iterator[Any]) -> Iterator[Any]:
    """Iterate packets, ending (not raising) at damaged data the demuxer cannot get past."""
    while True:
        try:
            pkt = next(packets)
        except StopIteration:
            return
        except (av.error.FFmpegError, OSError) as exc:
            logger.warning("gpudecode: demuxing stopped at damaged data: %s", exc)
            return
        yield pkt
