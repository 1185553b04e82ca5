"""Exact mode's target rules (``_targets.ExactTargets``), each against the rule its docstring states.

``open_at`` is driven by a fake demuxer that lands late, lands on a non-keyframe or finds nothing, as chosen per
seek; the oracle replays the stated schedule (keyframes ``key``, ``key - 1``, ``- 2``, ``- 4``, ``- 8``, ``- 16``;
the first that lands right, where a landing inside a GOP goes on to the next keyframe; else a restart) over the same
fake, by brute force. The landings are checked against FFmpeg's demuxers in ``test_mpegts.py`` (MPEG-TS lands
inside the GOP). Found by mutation testing (issue
11): the fixtures' demuxers always land right, so the step-back schedule and the restart had no test.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np
import pytest

from gpudecode._targets import ExactTargets, Position, close_iterator

KEYS = np.arange(0, 400, 20, dtype=np.int64)  # 20 keyframes, one every 20 ticks; packets every 5 ticks


@dataclass(frozen=True)
class Pkt:
    pts: int | None
    is_keyframe: bool = False
    dts: int | None = None


@dataclass
class Frame:
    pts: int
    duration: int | None = None


class FakeDemuxer:
    """Packets every 5 ticks; a seek to keyframe ``k``'s pts lands as ``landing[k]`` says."""

    def __init__(self, landing: dict[int, str]) -> None:
        # "late" (the next keyframe), "mid" (a non-keyframe), "none" (no packets), "stamped wrong" (a keyframe packet
        # whose pts is none of the index's keyframes: FFmpeg's MPEG-PS demuxer after a seek)
        self.landing = landing
        self.seeks: list[int] = []
        self.restarts = 0

    def packets_from(self, pts: int):
        return iter([Pkt(int(p), bool(p % 20 == 0)) for p in range(pts, 400, 5)])

    def seek(self, pts: int):
        self.seeks.append(pts)
        how = self.landing.get(int(np.searchsorted(KEYS, pts)), "right")
        if how == "none":
            return iter([])
        if how == "stamped wrong":
            return iter([Pkt(pts + 3, True), *self.packets_from(pts + 5)])
        return self.packets_from({"right": pts, "late": pts + 20, "mid": pts + 5}[how])

    def restart(self):
        self.restarts += 1
        return iter([Pkt(-5), *self.packets_from(0)])  # a stream that does not start on a keyframe

    def close(self) -> None:
        pass


def _oracle(key: int, landing: dict[int, str]) -> tuple[list[int], int | None, bool]:
    """The stated rule, replayed: (keyframes seeked, the keyframe landed on or None for a restart, at the start)."""
    tried: list[int] = []
    for back in (0, 1, 2, 4, 8, 16):
        k = max(key - back, 0)
        tried.append(k)
        how = landing.get(k, "right")
        # late: on keyframe k + 1; mid: inside GOP k, so the packets go on to keyframe k + 1 (past the last: none)
        if how == "right" or (how in ("late", "mid") and k + 1 <= key):
            return tried, (k if how == "right" else k + 1), k == 0
        if k == 0:
            break
    return tried, None, True


LANDINGS = {
    "all right": {},
    "one late": {k: "late" for k in range(20)},
    "mid then late": {**{k: "late" for k in range(20)}, 9: "mid", 8: "mid"},
    "nothing near the end": {k: "none" for k in range(12, 20)},
    "deep holes": {k: "none" for k in range(2, 20)},
    "inside the GOP (MPEG-TS)": {k: "mid" for k in range(20)},
    "stamped wrong (MPEG-PS)": {k: "stamped wrong" for k in range(20) if k % 3},
    "every seek fails": {k: "none" for k in range(20)},
    "the first keyframe fails": {0: "none", 1: "late", 2: "mid", 3: "mid", 4: "mid"},
}


@pytest.mark.parametrize("landing", list(LANDINGS), ids=str)
def test_open_at_follows_the_stated_step_back_schedule(landing, caplog):
    for key in range(20):
        demuxer = FakeDemuxer(LANDINGS[landing])
        with caplog.at_level(logging.DEBUG, logger="gpudecode"):
            caplog.clear()
            packets, at_start, opened = ExactTargets(KEYS).open_at(demuxer, key, int(KEYS[key]), 1)
        tried, landed, want_start = _oracle(key, LANDINGS[landing])
        assert demuxer.seeks == [int(KEYS[k]) for k in tried], key
        got = [p.pts for p in itertools.islice(packets, 3)]
        if landed is None:
            assert demuxer.restarts == 1 and got == [-5, 0, 5], key
            assert caplog.messages == [
                f"gpudecode: seeks toward keyframe {key} overshot; restarting from the first packet"
            ]
        else:
            assert demuxer.restarts == 0 and got == [int(KEYS[landed]), int(KEYS[landed]) + 5, int(KEYS[landed]) + 10]
            assert caplog.messages == []
        assert (at_start, opened) == (want_start, key), key


def test_open_at_clamps_a_negative_key_to_the_first():
    demuxer = FakeDemuxer({})
    packets, at_start, opened = ExactTargets(KEYS).open_at(demuxer, -3, 0, 1)
    assert demuxer.seeks == [0] and next(packets).pts == 0 and (at_start, opened) == (True, 0)


def test_key_of_packet_is_the_keyframe_at_or_before_its_time():
    t = ExactTargets(KEYS)
    for ts in range(-10, 420):
        assert t.key_of_packet(Pkt(ts)) == sum(k <= ts for k in KEYS) - 1
        assert t.key_of_packet(Pkt(None, dts=ts)) == sum(k <= ts for k in KEYS) - 1
    assert t.key_of_packet(Pkt(None)) == -1  # no timestamp at all


def test_wanted_packets_are_the_requested_ones_and_all_after_the_last():
    targets = np.array([40, 45, 120], dtype=np.int64)
    wanted = ExactTargets(KEYS).wanted(targets, 5)
    for pts in range(-10, 200):
        assert wanted(Pkt(pts)) == (pts in (40, 45, 120) or pts > 120), pts
    assert wanted(Pkt(None))  # a packet without a pts may be anything


def test_match_reports_the_targets_no_output_had_and_emits_the_one_it_has():
    t = ExactTargets(KEYS)
    targets = np.array([10, 20, 30, 40], dtype=np.int64)
    emitted: list[tuple[int, int, int]] = []
    missing: list[int] = []
    emit = lambda j, f, p, d: emitted.append((j, p, d))  # noqa: E731
    assert t.match(Frame(30, 5), targets, 0, emit, missing, Position(), 5) == (3, True)
    assert (missing, emitted) == ([0, 1], [(2, 30, 5)])
    assert t.match(Frame(35), targets, 3, emit, missing, Position(), 5) == (3, False)  # not asked for
    assert t.match(Frame(50), targets, 3, emit, missing, Position(), 5) == (4, False)
    assert (missing, emitted) == ([0, 1, 3], [(2, 30, 5)])


def test_close_iterator_closes_a_suspended_generator():
    closed = []

    def gen():
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    g = gen()
    next(g)
    close_iterator(g)
    assert closed == [True]
    close_iterator(None)  # nothing to close
    close_iterator(iter([1]))  # a plain iterator has no close


def test_open_at_on_a_stream_without_packets_gives_none():
    demuxer = FakeDemuxer({k: "none" for k in range(20)})
    demuxer.restart = lambda: (setattr(demuxer, "restarts", 1), iter([]))[1]  # nothing from the start either
    packets, at_start, opened = ExactTargets(KEYS).open_at(demuxer, 4, int(KEYS[4]), 1)
    assert list(packets) == [] and demuxer.restarts == 1 and (at_start, opened) == (True, 4)
