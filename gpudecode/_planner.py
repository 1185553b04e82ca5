"""The decode planner shared by every backend.

The planner turns requested frames into work: decide per target whether decoding can continue forward or must seek
to a keyframe, feed packets, pick the decoder outputs that were asked for, and hand only those to the backend for
color conversion. A backend only turns packets into frames (``decode``/``flush``/``reset``) and converts kept frames
(``convert``); it never decides what to decode. Because all decisions live here, the NVDEC path is tested by the same
logic that CPU tests exercise. What differs between the seek modes (how a target is matched, where keyframes are)
is asked of the planner's :mod:`targets <gpudecode._targets>` object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import av
import numpy as np
import torch

from gpudecode._backends._base import Backend
from gpudecode._errors import DecodeError
from gpudecode._targets import DecodedFrame, Demuxer, Emit, Position, Targets, close_iterator

__all__ = ["PlanStats", "Planner"]

logger = logging.getLogger("gpudecode")


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
class _Call:
    """One :meth:`Planner.run`: its sorted, unique targets and where their frames go."""

    targets: np.ndarray
    start_keys: np.ndarray | None
    emit: Emit
    wanted: Callable[[av.Packet], bool]
    missing: list[int] = field(default_factory=list)

    def start_key(self, j: int) -> int | None:
        return int(self.start_keys[j]) if self.start_keys is not None else None


@dataclass
class _Fed:
    """How feeding toward a target ended.

    Attributes:
        j: The next target.
        outcome: ``"done"`` (stop feeding here), ``"overshoot"`` (the seek landed after the target) or ``"eof"``
            (the packets ran out).
        last_frame: The last decoder output taken.
        nothing_after_seek: At ``"eof"``: the decoder output nothing since the seek.
    """

    j: int
    outcome: str
    last_frame: DecodedFrame | None
    nothing_after_seek: bool = False


@dataclass
class Planner:
    """Plans and runs decodes for one stream; keeps the decode position between calls.

    Attributes:
        demuxer: Where packets come from.
        backend: What decodes them.
        targets: How targets are matched and keyframes found (the seek mode's part, see ``_targets``).
        nominal_duration: Frame duration used when a frame carries none (time-base units).
        stats: Counters of the last call.
    """

    demuxer: Demuxer
    backend: Backend
    targets: Targets
    nominal_duration: int = 1
    stats: PlanStats = field(default_factory=PlanStats)
    _pos: Position = field(default_factory=Position)

    def invalidate(self) -> None:
        """Forget the decode position (the next request seeks); release the suspended packet iterator."""
        close_iterator(self._pos.outputs)
        close_iterator(self._pos.packets)
        self._pos = Position()

    # -- positioning -------------------------------------------------------------------------------------
    def _reposition(self) -> Position:
        """Common part of every seek: drop the packet iterator, the decoder state and what was skipped."""
        pos = self._pos
        self.stats.seeks += 1
        close_iterator(pos.outputs)
        close_iterator(pos.packets)
        pos.packets = pos.outputs = None
        self.backend.reset()
        pos.last_pts = pos.last_end = None
        pos.skipped = set()
        pos.sequence_key = pos.sequence_end = None
        return pos

    def _seek(self, key: int, target: int, margin_factor: int = 1) -> None:
        pos = self._reposition()
        pos.packets, pos.at_start, pos.cur_key = self.targets.open_at(self.demuxer, key, target, margin_factor)
        pos.sequence_key = key if self.targets.lands_on(key, margin_factor) else None

    def _restart(self, need: int) -> None:
        """Read from the stream's first packet, where seeks keep landing wrong.

        ``need``: the keyframe the target wants, counted as reached: the decode goes forward from the start, and
        must not stop to seek for it (a seek is what failed).
        """
        pos = self._reposition()
        pos.packets = self.demuxer.restart()
        pos.at_start = True
        pos.cur_key = need

    def _must_seek(self, need: int, target: int) -> bool:
        return self.targets.must_seek(self._pos, need, target, self.nominal_duration)

    # -- running -----------------------------------------------------------------------------------------
    def run(self, targets: np.ndarray, start_keys: np.ndarray | None, emit: Emit) -> list[int]:
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
        if self._pos.outputs is not None:  # a sequence holds frames taken from the decoder: start afresh
            self.invalidate()
        call = _Call(targets, start_keys, emit, self.targets.wanted(targets, self.nominal_duration))
        j = 0
        overshoots = 0
        while j < targets.shape[0]:
            self._position_for(call, j, overshoots)
            fed = self._feed_toward(call, j)
            j = fed.j
            if fed.outcome == "eof" and fed.nothing_after_seek and self.targets.may_overshoot and overshoots <= 3:
                fed.outcome = "overshoot"  # nothing at all after the seek: it landed past the stream's last keyframe
            if fed.outcome == "overshoot":
                overshoots += 1
                close_iterator(self._pos.packets)
                self._pos.packets = None
            elif fed.outcome == "eof":
                j = self._finish_stream(call, j, fed.last_frame)
        return call.missing

    def _position_for(self, call: _Call, j: int, overshoots: int) -> None:
        """Seek (or restart, after repeated overshoots) unless decoding can continue forward to target ``j``."""
        pos = self._pos
        tgt = int(call.targets[j])
        need = self.targets.need_key(tgt, call.start_key(j))
        behind = self.targets.behind(pos, tgt) or (
            bool(pos.skipped) and self.targets.was_skipped(pos, tgt, self.nominal_duration)
        )
        if pos.packets is None or behind or self._must_seek(need, tgt):
            if overshoots > 3:
                self._restart(need)
            else:
                self._seek(need, tgt, 4**overshoots)

    def _feed_toward(self, call: _Call, j: int) -> _Fed:
        """Feed packets and take outputs until every target is answered, a seek is needed, or the stream ends."""
        pos = self._pos
        targets = call.targets
        n = targets.shape[0]
        first_after_seek = pos.last_pts is None and not pos.at_start
        last_frame: DecodedFrame | None = None
        assert pos.packets is not None
        for pkt in pos.packets:
            self._note_keyframe(pkt)
            self.stats.packets_fed += 1
            want = call.wanted(pkt)
            if not want and pkt.pts is not None and self.backend.skips_unwanted:
                pos.skipped.add(int(pkt.pts))
            for f in self._feed(pkt, want):
                if first_after_seek and self.targets.may_overshoot and f.pts is not None and f.pts > int(targets[j]):
                    return _Fed(j, "overshoot", last_frame)  # the seek landed after the target
                first_after_seek = False
                j = self._match(f, call, j)
                last_frame = f
            if j >= n:
                return _Fed(j, "done", last_frame)
            nxt = int(targets[j])
            if self._must_seek(self.targets.need_key(nxt, call.start_key(j)), nxt):
                return _Fed(j, "done", last_frame)
        return _Fed(j, "eof", last_frame, nothing_after_seek=first_after_seek)

    def _note_keyframe(self, pkt: av.Packet) -> None:
        if pkt.is_keyframe:
            k = self.targets.key_of_packet(pkt)
            if k > self._pos.cur_key:
                self._pos.cur_key = k

    def _finish_stream(self, call: _Call, j: int, last_frame: DecodedFrame | None) -> int:
        """At the end of the packets: drain; targets past the last frame get it (time targets) or are missing.

        Only a real end gives its last frame to later times: where the packets stopped at data that could not be
        read (the demuxer's ``error``), the frames after it are missing, not the last one again.
        """
        pos = self._pos
        n = call.targets.shape[0]
        held = None
        repeat = self.targets.may_overshoot and self.demuxer.error is None
        if repeat and j < n and last_frame is not None:
            # Convert before draining: a hardware decoder may reuse the surface.
            held = self._hold(last_frame)
        last_flushed = None
        for f in self._drain():
            j = self._match(f, call, j)
            if f.pts is not None:
                last_flushed = f
        if repeat and j < n and last_flushed is not None:  # the drained tail is the newest frame
            held = self._hold(last_flushed)
        while j < n:
            if held is not None:
                call.emit(j, held[0], int(held[1]), int(held[2]))
            else:
                call.missing.append(j)
            j += 1
        close_iterator(pos.packets)
        pos.packets = None
        pos.last_pts = pos.last_end = None
        return j

    def _hold(self, f: DecodedFrame) -> tuple[DecodedFrame | torch.Tensor, int, int]:
        """Keep a frame for later targets.

        A CPU frame is kept as it is (it owns its buffers), so it is converted once, at the precision the output
        wants; a device surface is converted now (the hardware decoder reuses it).
        """
        kept = f if self.backend.output_device_type == "cpu" else self.backend.convert(f)
        return kept, f.pts, self._duration(f)

    def _duration(self, f: DecodedFrame) -> int:
        """A decoder output's duration; one without any lasts the nominal frame duration."""
        return int(f.duration or self.nominal_duration)

    def _match(self, f: DecodedFrame, call: _Call, j: int) -> int:
        """Count a decoder output; emit the targets it answers."""
        self.stats.frames_decoded += 1
        if f.pts is None:
            return j
        self._pos.last_pts = f.pts
        j, converted = self.targets.match(f, call.targets, j, call.emit, call.missing, self._pos, self.nominal_duration)
        if converted:
            self.stats.frames_converted += 1
        return j

    def run_sequence(self, target: int, count: int, step: int, emit: Emit, owner: object | None = None) -> int:
        """Approximate mode: emit ``count`` decoder outputs in a row, every ``step``-th.

        The first is the frame shown at ``target``; or, when ``owner`` ran the previous sequence and nothing
        decoded since, the output right after that sequence's last (iteration in chunks). Frames are taken in
        the order the decoder outputs them, so a stream whose timestamps step back (segments joined without
        re-encoding) still gives each frame once. ``emit`` is called as in :meth:`run`.

        Another caller's sequence (say the next chunk of ``get_frames_in_range``) goes on from the suspended one
        without a seek where a seek would reopen the same keyframe and every output since it ended at or before
        ``target``: the seek would decode those outputs again and skip them, so both give the same frames.

        Outputs past the end of the stream (a header that over-counts) repeat its last frame; where the packets
        stopped at data that could not be read, they are missing instead.

        Returns:
            How many were emitted: ``count``, or 0 when the decoder output nothing at all.
        """
        pos = self._pos
        skip_to = None  # going on from another caller's sequence: outputs that end by the target are skipped
        if owner is None or pos.outputs is None or pos.sequence_owner is not owner:
            need = self.targets.need_key(target, None)
            ended = pos.sequence_end
            if pos.outputs is not None and pos.sequence_key == need and ended is not None and ended <= target:
                skip_to = target
            else:
                self._seek(need, target)
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
            if skip_to is not None:
                if f.pts + self._duration(f) <= skip_to:
                    continue
                skip_to = None
            last = f
            if k % step == 0:
                self.stats.frames_converted += 1
                emit(j, f, int(f.pts), self._duration(f))
                j += 1
            k += 1
        if self.demuxer.error is not None:
            return j  # the packets stopped at unreadable data: what was not decoded is missing, not repeated
        if last is None and j < count:
            return self._repeat_shown_at(target, j, count, emit)
        while last is not None and j < count:
            emit(j, last, int(last.pts), self._duration(last))
            j += 1
        return j

    def _repeat_shown_at(self, target: int, j: int, count: int, emit: Emit) -> int:
        """Emit the frame shown at ``target`` as outputs ``j`` to ``count - 1``; return how many were emitted in all.

        For a sequence with nothing left to take: it starts past the real end of a stream whose header over-counts,
        or an earlier part of it (an iterator's previous chunk) reached that end. :meth:`run` finds that frame (the
        last one) and converts it while it is valid; the other outputs copy it.
        """
        taken: list[tuple[DecodedFrame | torch.Tensor, int, int]] = []

        def take(_k: int, frame: DecodedFrame | torch.Tensor, pts: int, duration: int) -> None:
            emit(j, frame, pts, duration)
            taken.append((frame, pts, duration))

        self.run(np.array([target], dtype=np.int64), None, take)
        if not taken:
            return j
        frame, pts, duration = taken[0]
        for k in range(j + 1, count):
            emit(k, frame, pts, duration)
        return count

    def _outputs(self, target: int) -> Iterator[DecodedFrame]:
        """Decoder outputs from the frame shown at ``target`` on, to the end of the stream.

        A seek that lands after the target (its first output starts later) or past the last keyframe (nothing comes
        out) is retried as :meth:`run` retries it: 4, 16 and 64 margins before the target, then from the start.
        """
        pos = self._pos
        retries = 0
        while True:  # ends: after the restart the packets start at the first, so no output counts as late
            first = not pos.at_start
            for f in self._decoded(pos):
                end = f.pts + self._duration(f)
                pos.sequence_end = end if pos.sequence_end is None else max(pos.sequence_end, end)
                if first and f.pts > target:
                    break  # the seek landed after the target: seek again from further back
                first = False
                if end > target:
                    yield f
                    target = -(1 << 62)  # found: take every later output
            else:
                if not first:
                    return
                # nothing at all after the seek: it landed past the last keyframe; seek from further back
            retries += 1
            running, pos.outputs = pos.outputs, None  # a seek closes pos.outputs: not this running generator
            if retries < 4:
                self._seek(self.targets.need_key(target, None), target, 4**retries)
            else:
                self._restart(self.targets.need_key(target, None))
            pos.outputs = running

    def _decoded(self, pos: Position) -> Iterator[DecodedFrame]:
        """Every frame the backend returns for the packets from ``pos`` on, then the drained ones."""
        assert pos.packets is not None
        for pkt in pos.packets:
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

    def _feed(self, pkt: av.Packet, want: bool) -> Sequence[DecodedFrame]:
        """Give the backend one packet; a packet it rejects (damaged data) yields no frames."""
        try:
            return self.backend.decode(pkt, want)
        except DecodeError as exc:
            logger.debug("gpudecode: skipping a packet the decoder rejected: %s", exc)
            return ()

    def _drain(self) -> Sequence[DecodedFrame]:
        """Drain the backend at the end of the stream; a decoder failing there yields no more frames."""
        try:
            return self.backend.flush()
        except DecodeError as exc:
            logger.warning("gpudecode: decoder failed while draining: %s", exc)
            return ()

    def groups(self, targets: np.ndarray, start_keys: np.ndarray | None) -> list[tuple[int, int, int]]:
        """Split sorted targets into independent decode runs: ``(first, stop, cost)`` slices of ``targets``.

        A new run starts where reaching the next target needs a seek (its start keyframe lies beyond the keyframe
        interval of the previous target); ``cost`` estimates the frames a run decodes.
        """
        if targets.shape[0] == 0:
            return []
        return self.targets.groups(targets, start_keys, self.nominal_duration)
