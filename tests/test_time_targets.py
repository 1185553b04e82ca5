"""Approximate mode's target rules (``_targets.TimeTargets``), each against the rule its docstring states.

The oracles are brute force over the stated rule (every target checked, no binary search), on grids that cross every
boundary: which packets a request needs decoded (a target within two frames of the packet's span, or anything near
the end), which skipped packets force a re-decode, when to seek instead of decoding forward, which frame shows a
time. Found by mutation testing (issue 11): these rules decide how much is decoded, and only the frames were tested.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from gpudecode._targets import NO_INDEX_KEY, Position, TimeTargets

NOMINAL = 10


@dataclass
class Pkt:
    pts: int | None
    dts: int | None = None
    duration: int | None = None
    is_keyframe: bool = False


@dataclass
class Frame:
    pts: int
    duration: int | None


def _wanted_rule(targets: list[int], pkt: Pkt) -> bool:
    slack = 2 * NOMINAL
    if pkt.pts is None:
        return True
    last = targets[-1] if targets else 0
    if pkt.pts > last - slack:
        return True
    return any(pkt.pts - slack <= t <= pkt.pts + (pkt.duration or 0) + slack for t in targets)


@pytest.mark.parametrize("targets", [[], [0], [100], [37, 38, 120, 300], [55, 55, 200]])
def test_wanted_packets_are_those_within_two_frames_of_a_target(targets):
    near = TimeTargets().wanted(np.array(targets, dtype=np.int64), NOMINAL)
    for pts in [None, *range(-30, 330, 1)]:
        for dur in (None, 0, 1, 10):
            pkt = Pkt(pts, duration=dur)
            assert near(pkt) == _wanted_rule(targets, pkt), (targets, pts, dur)


def test_a_skipped_packet_within_two_frames_of_a_target_counts():
    pos = Position(skipped={100, 250})
    t = TimeTargets()
    for target in range(40, 320):
        want = any(target - 2 * NOMINAL <= p <= target + 2 * NOMINAL for p in pos.skipped)
        assert t.was_skipped(pos, target, NOMINAL) == want, target


def test_seek_only_for_a_later_keyframe_or_a_gap_of_more_than_two_frames():
    indexed = TimeTargets(key_of=lambda ts: ts // 100)
    blind = TimeTargets()
    pos = Position(cur_key=3, last_pts=500)
    assert not indexed.must_seek(pos, 3, 10_000, NOMINAL)  # the keyframe is already fed
    assert indexed.must_seek(pos, 4, 510, NOMINAL)  # a later keyframe: seek, whatever the gap
    for target in range(480, 560):
        assert blind.must_seek(pos, NO_INDEX_KEY, target, NOMINAL) == (target - 500 > 2 * NOMINAL), target
    assert blind.must_seek(Position(cur_key=3), NO_INDEX_KEY, 510, NOMINAL)  # nothing output yet: seek


def test_behind_means_the_last_output_ends_after_the_target():
    t = TimeTargets()
    assert not t.behind(Position(), 0)
    pos = Position(last_pts=100, last_end=110)
    assert [t.behind(pos, x) for x in (99, 109, 110, 111)] == [True, True, False, False]
    no_end = Position(last_pts=100)
    assert [t.behind(no_end, x) for x in (99, 100, 101)] == [True, False, False]


def test_a_packets_keyframe_is_looked_up_by_its_decode_time():
    seen = []

    def key_of(ts: int) -> int:
        seen.append(ts)
        return ts // 100

    t = TimeTargets(key_of=key_of)
    assert t.key_of_packet(Pkt(pts=250, dts=180)) == 1 and seen == [180]  # dts, not pts
    assert t.key_of_packet(Pkt(pts=250, dts=None)) == 2 and seen[-1] == 250  # pts when there is no dts
    assert t.key_of_packet(Pkt(pts=None, dts=330)) == 3
    assert t.key_of_packet(Pkt(pts=None, dts=None)) == -1
    assert TimeTargets().key_of_packet(Pkt(pts=250, dts=180)) == -1  # no index


class _Demuxer:
    """Records seeks, and restarts as a seek to ``"start"``; a seek gives the packets ``landing`` holds."""

    def __init__(self, landing: list[Pkt] | None = None) -> None:
        self.seeks: list[int | str] = []
        self.landing = landing or []

    def seek(self, ts: int):
        self.seeks.append(ts)
        return iter(self.landing)

    def restart(self):
        self.seeks.append("start")
        return iter(())


def test_open_at_seeks_to_the_indexed_keyframe_first_and_by_margins_after_an_overshoot():
    t = TimeTargets(key_ts=lambda k: 100 * k + 7, seek_margin=30, begin_pts=5)
    d = _Demuxer()
    _, at_start, key = t.open_at(d, 4, 450, 1)
    assert d.seeks == [407] and not at_start and key == 4  # the keyframe's own time
    t.open_at(d, 4, 450, 4)
    assert d.seeks[-1] == 450 - 4 * 30  # after an overshoot: margins before the target
    t.open_at(d, 0, 450, 1)
    assert d.seeks[-1] == 7  # keyframe 0 is a keyframe like any other
    t.open_at(d, NO_INDEX_KEY, 450, 1)
    assert d.seeks[-1] == 420  # no index: one margin
    _, at_start, _ = t.open_at(d, NO_INDEX_KEY, 36, 1)
    assert d.seeks[-1] == 6 and not at_start  # one tick after the start is a seek
    _, at_start, _ = t.open_at(d, 4, 20, 8)
    assert d.seeks[-1] == 5 and at_start  # clamped at the start, which cannot overshoot
    exact_start = TimeTargets(key_ts=lambda k: 5, seek_margin=30, begin_pts=5)
    _, at_start, _ = exact_start.open_at(d, 0, 450, 1)
    assert d.seeks[-1] == 5 and at_start  # seeking exactly to the start is at the start


@pytest.mark.parametrize(
    ("first", "restarts"),
    [
        (Pkt(pts=5, dts=5, is_keyframe=True), False),  # the first keyframe, shown at the start
        (Pkt(pts=15, dts=-5, is_keyframe=True), False),  # decoded before the start (B-frames follow it)
        (Pkt(pts=1, dts=1, is_keyframe=False), False),  # decoded before the start, whatever it is
        (Pkt(pts=25, dts=5, is_keyframe=False), True),  # MPEG-TS H.264: after the first keyframe, a P-frame
        (Pkt(pts=5, dts=5, is_keyframe=False), True),  # shown at the start but no keyframe: not a place to start
        (Pkt(pts=25, dts=5, is_keyframe=True), True),  # MPEG-TS MPEG-2: that P-frame flagged as a keyframe
        (Pkt(pts=None, dts=None, is_keyframe=True), True),  # no timestamps to tell
    ],
)
def test_a_seek_to_the_start_that_lands_after_it_restarts_from_the_first_packet(first, restarts):
    t = TimeTargets(seek_margin=30, begin_pts=5)
    second = Pkt(pts=30, dts=10)
    d = _Demuxer([first, second])
    packets, at_start, _ = t.open_at(d, NO_INDEX_KEY, 20, 1)
    assert at_start
    if restarts:
        assert d.seeks == [5, "start"] and list(packets) == []  # the fake's restart gives nothing
    else:
        assert d.seeks == [5] and list(packets) == [first, second]
    d = _Demuxer([])
    packets, at_start, _ = t.open_at(d, NO_INDEX_KEY, 20, 1)
    assert d.seeks == [5] and at_start and list(packets) == []  # nothing after the seek: nothing to restart for
    indexed = TimeTargets(key_ts=lambda k: 5, seek_margin=30, begin_pts=5)
    d = _Demuxer([first, second])
    packets, at_start, _ = indexed.open_at(d, 0, 20, 1)
    assert d.seeks == [5] and at_start and list(packets) == [first, second]  # an index's keyframe: trusted


def test_a_frame_shows_every_target_before_its_end():
    t = TimeTargets()
    targets = np.array([95, 100, 104, 109, 110, 130], dtype=np.int64)
    got: list[tuple[int, int, int]] = []

    def emit(k: int, f: Frame, p: int, d: int) -> None:
        got.append((k, p, d))

    pos = Position()
    k, converted = t.match(Frame(100, 10), targets, 1, emit, [], pos, 7)  # its own duration, not the nominal one
    assert (k, converted) == (4, True) and [g[0] for g in got] == [1, 2, 3] and pos.last_end == 110
    k, converted = t.match(Frame(120, None), targets, 5, emit, [], pos, 7)  # no duration: the nominal one
    assert (k, converted) == (5, False) and pos.last_end == 127  # 130 is after its end: nothing shown
    k, converted = t.match(Frame(125, 0), targets, 5, emit, [], pos, 7)
    assert (k, converted) == (6, True) and got[-1] == (5, 125, 7) and pos.last_end == 132
