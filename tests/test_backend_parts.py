"""Small parts of the backends, each against the rule its docstring states: the NVDEC decoder cache, its size
buckets and creation arguments, and the frame numbering of raw elementary streams. Found by mutation testing (issue
11): the end-to-end tests run these parts without looking at their bounds, counters or arguments."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from gpudecode._backends import _nvdec_cache
from gpudecode._backends._nvdec_cache import NVDEC_CACHE_ENV, SIZE_BUCKETS, DecoderCache, default_cache_size
from gpudecode._backends._sequenced import SequencedFrames


def test_the_decoder_cache_counts_and_bounds_what_it_keeps():
    cache = DecoderCache()
    assert (cache.max_idle, cache.max_per_key, cache.created, cache.reused) == (16, 4, 0, 0)
    made = [cache.acquire(("k",), object) for _ in range(6)]
    assert (cache.created, cache.reused) == (6, 0)
    for d in made:
        cache.release(("k",), d)
    assert cache.idle_count() == 4  # at most max_per_key idle decoders per key
    again = [cache.acquire(("k",), object) for _ in range(5)]
    assert (cache.created, cache.reused) == (7, 4) and again[:4] == made[3::-1]  # the most recently released first


@pytest.mark.parametrize(("text", "want"), [(None, 16), ("0", 0), ("5", 5), ("-2", 16), ("many", 16)])
def test_the_cache_size_comes_from_the_environment(monkeypatch, caplog, text, want):
    if text is None:
        monkeypatch.delenv(NVDEC_CACHE_ENV, raising=False)
    else:
        monkeypatch.setenv(NVDEC_CACHE_ENV, text)
    with caplog.at_level(logging.WARNING, logger="gpudecode"):
        assert default_cache_size() == want
    bad = text is not None and want == 16
    assert caplog.messages == ([f"gpudecode: ignoring {NVDEC_CACHE_ENV}={text!r} (not an integer >= 0)"] if bad else [])


def test_a_size_goes_to_the_smallest_bucket_holding_it():
    sizes = {(w + dw, h + dh) for w, h in SIZE_BUCKETS for dw in (-1, 0, 1) for dh in (-1, 0, 1)} | {(16, 16)}
    for w, h in sorted(sizes):
        fits = [b for b in SIZE_BUCKETS if w <= b[0] and h <= b[1]]
        assert _nvdec_cache.size_bucket(w, h) == (fits[0] if fits else (w, h)), (w, h)


class RecordingNvc:
    """Records CreateDecoder's arguments and each decoder's reconfigurations."""

    OutputColorType = SimpleNamespace(NATIVE="native")

    def __init__(self) -> None:
        self.created: list[dict[str, object]] = []
        self.reconfigured: list[tuple[int, int]] = []

    def CreateDecoder(self, **kwargs: object) -> SimpleNamespace:
        self.created.append(kwargs)
        return SimpleNamespace(setReconfigParams=lambda w, h: self.reconfigured.append((w, h)))


def test_decoders_are_created_with_the_keys_arguments_and_reconfigured_for_a_new_size(monkeypatch):
    monkeypatch.setattr(_nvdec_cache, "decoder_cache", DecoderCache())
    nvc = RecordingNvc()
    key = (2, "h264", 8, 1920, 1088, 0xBEEF)
    dec = _nvdec_cache.acquire_decoder(nvc, key, "H264", 1280, 720)
    assert nvc.created == [
        {
            "gpuid": 2,
            "codec": "H264",
            "cudacontext": 0,
            "cudastream": 0xBEEF,
            "usedevicememory": True,
            "maxwidth": 1920,
            "maxheight": 1088,
            "outputColorType": "native",
        }
    ]
    _nvdec_cache.decoder_cache.release(key, dec)
    assert _nvdec_cache.acquire_decoder(nvc, key, "H264", 1280, 720) is dec and nvc.reconfigured == []
    _nvdec_cache.decoder_cache.release(key, dec)
    assert _nvdec_cache.acquire_decoder(nvc, key, "H264", 1920, 1080) is dec and nvc.reconfigured == [(1920, 1080)]
    _nvdec_cache.decoder_cache.release(key, dec)
    _nvdec_cache.acquire_decoder(nvc, key, "H264", 1920, 1080)
    assert nvc.reconfigured == [(1920, 1080)]  # it remembers the size it was set up for
    assert len(nvc.created) == 1


class Inner:
    """A backend that records what it was asked to decode."""

    name = "inner-name"
    output_device_type = "cpu"

    def __init__(self) -> None:
        self.wanted: list[object] = []

    def decode(self, packet: object, wanted: object = "default") -> list[SimpleNamespace]:
        self.wanted.append(wanted)
        return [SimpleNamespace(pts=None, duration=None) for _ in range(int(packet))]

    def reset(self) -> None:
        pass


def test_raw_stream_frames_are_numbered_from_zero_and_every_picture_is_decoded():
    inner = Inner()
    seq = SequencedFrames(inner, 40)
    assert (seq.name, seq.output_device_type, seq.skips_unwanted) == ("inner-name", "cpu", False)
    assert seq.skips_unwanted is False
    got = [f.pts for f in seq.decode(2, wanted=False)] + [f.pts for f in seq.decode(1)]
    assert got == [0, 40, 80] and inner.wanted == [True, True]  # never lets the decoder skip a picture
    seq.reset()
    assert [(f.pts, f.duration) for f in seq.decode(1)] == [(0, 40)]
