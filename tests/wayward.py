"""A demuxer that does not land where asked, and the checks the planner's tests make with it.

Demuxers do not always land where asked: FFmpeg's mov demuxer compares a seek time with decode timestamps and can
land one keyframe late; some land early. ``Wayward`` wraps a decoder's own PyAVDemuxer and, after each seek, lands
``late`` keyframes after where FFmpeg put it (or restarts from the first packet, ``early``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from oracle import assert_frame_matches, oracle, to_hwc

from gpudecode import VideoDecoder


class Wayward:
    """The real demuxer, landing ``late`` keyframes after FFmpeg's landing place (``early``: at the first packet)."""

    def __init__(self, inner: Any, late: int = 0, early: bool = False) -> None:
        self.inner = inner
        self.late = late
        self.early = early
        self.seeks: list[int] = []
        self.drawn: list[int] = []  # packets taken from each seek's iterator
        self.restarts = 0  # reads from the first packet the planner asked for (not the seeks answered that way)
        self.first_key_pts = next(p.pts for p in inner.restart() if p.is_keyframe)

    def seek(self, pts: int) -> Iterator[Any]:
        self.seeks.append(pts)
        if self.early or pts <= self.first_key_pts:  # at or before the first keyframe: every demuxer starts there
            return self._count(self.inner.restart())
        return self._count(self._skip_keys(self.inner.seek(pts), self.late))

    def _count(self, packets: Iterator[Any]) -> Iterator[Any]:
        """Count in ``drawn`` the packets taken from each seek's iterator."""
        self.drawn.append(0)
        k = len(self.drawn) - 1
        for p in packets:
            self.drawn[k] += 1
            yield p

    @staticmethod
    def _skip_keys(packets: Iterator[Any], late: int) -> Iterator[Any]:
        keys = 0
        for p in packets:
            if p.is_keyframe:
                keys += 1
                if keys > late:
                    yield p
                    break
        yield from packets

    def restart(self) -> Iterator[Any]:
        self.restarts += 1
        return self.inner.restart()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def open_wayward(path, mode: str, **wayward: Any) -> tuple[VideoDecoder, Wayward]:
    """A one-thread decoder whose planner reads through a ``Wayward`` demuxer."""
    dec = VideoDecoder(path, seek_mode=mode, num_threads=1)
    len(dec)
    dec._session.ensure_open()
    w = Wayward(dec._session.pipe.planner.demuxer, **wayward)
    dec._session.pipe.planner.demuxer = w
    return dec, w


def check_batch(name: str, path, batch, indices) -> None:
    """The batch holds frames ``indices``: the CLI's pixels, a plain PyAV decode's pts."""
    _frames, pts, _dur = oracle(str(path))
    data = to_hwc(batch.data, "NCHW")
    for k, i in enumerate(indices):
        assert_frame_matches(name, str(path), data[k], int(i))
    np.testing.assert_allclose(batch.pts_seconds.numpy(), pts[list(indices)], atol=1e-9)
