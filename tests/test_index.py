"""The exact index: MP4 table path vs packet scan, keyframe planning, persistence and the cache."""

from __future__ import annotations

import shutil
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from oracle import ALL, assert_frame_matches, oracle

from gpudecode import MediaError, VideoDecoder
from gpudecode._index import _from_packets, _scan_packets, median_int

MP4S = [
    n
    for n in ALL
    if n
    in {
        "h264_bframes",
        "hevc8",
        "rotated90",
        "rotated270",
        "rotated180",
        "editlist",
        "full_range",
        "bt709",
        "with_audio",
    }
]


def _scan_index(path):
    c = av.open(str(path))
    s = c.streams.video[0]
    arrays = _scan_packets(c, s)
    idx = _from_packets(*arrays, s.time_base, "", s.index, "packet-scan")
    c.close()
    return idx


@pytest.mark.parametrize("name", MP4S)
def test_mp4_tables_equal_packet_scan(video, name):
    path = video(name)
    fast = VideoDecoder(path).index
    assert fast.method == "mp4-tables"
    slow = _scan_index(path)
    for field in ("pts", "duration", "is_key", "key_pts", "start_key"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field), err_msg=field)


@pytest.mark.parametrize("name", ALL)
def test_index_matches_decoded_frames(video, name):
    _, pts, _ = oracle(str(video(name)))
    idx = VideoDecoder(video(name)).index
    tb = float(idx.time_base)
    np.testing.assert_allclose(idx.pts * tb, pts, atol=1e-9)
    assert (np.diff(idx.pts) > 0).all()
    assert (idx.duration > 0).all()
    # every frame's start keyframe is shown no later than the frame
    assert (idx.key_pts[idx.start_key] <= idx.pts).all()


def test_open_gop_leading_frames_start_from_previous_keyframe(video):
    """Leading pictures of an open GOP (after keyframe K in decode order, shown before it) reference the previous
    GOP: decoding must start at the keyframe before K. Oracle for the packet order: a plain PyAV demux."""
    path = video("h264_open_gop")
    with av.open(str(path)) as c:
        packets = [(p.pts, p.is_keyframe) for p in c.demux(video=0) if p.size]
    leading, last_key = [], None
    for pts, key in packets:
        if key:
            last_key = pts
        elif last_key is not None and pts < last_key:
            leading.append((pts, last_key))
    assert leading, "the fixture has no leading pictures: it is not open-GOP"
    dec = VideoDecoder(path, dimension_order="NHWC")
    idx = dec.index
    for pts, key_after in leading:
        i = int(np.flatnonzero(idx.pts == pts)[0])
        assert idx.key_pts[idx.start_key[i]] < key_after, f"frame {i} (pts {pts}) starts at its own GOP's keyframe"
        fresh = VideoDecoder(path, dimension_order="NHWC")  # random access: nothing decoded before
        assert_frame_matches("h264_open_gop", str(path), fresh[i].numpy(), i)


def test_edit_list_discarded_packets_are_not_frames(video):
    path = video("editlist")
    c = av.open(str(path))
    pk = [p for p in c.demux(video=0) if p.size]
    c.close()
    assert sum(p.is_discard for p in pk) == 3
    idx = VideoDecoder(path).index
    assert idx.num_frames == len(pk) - 3 == 37
    assert idx.pts.min() == 0
    assert idx.key_pts.min() < 0  # the discarded keyframe is still a decode start point


# -- persistence --------------------------------------------------------------------------------------------
def test_save_and_load_index(video, tmp_path):
    path = video("h264_mkv")
    dec = VideoDecoder(path)
    dec.save_index(tmp_path / "i.gdidx")
    dec2 = VideoDecoder(path, index=tmp_path / "i.gdidx")
    assert dec2.index.method == "file"
    np.testing.assert_array_equal(dec2.index.pts, dec.index.pts)
    np.testing.assert_array_equal(dec2[:], dec[:])


def test_loading_an_index_of_another_file_fails(video, tmp_path):
    VideoDecoder(video("h264_mkv")).save_index(tmp_path / "i.gdidx")
    with pytest.raises(MediaError, match="different file or stream"):
        VideoDecoder(video("bt601"), index=tmp_path / "i.gdidx")


def test_bad_index_file(video, tmp_path):
    bad = tmp_path / "bad.gdidx"
    bad.write_bytes(b"not an index")
    with pytest.raises(MediaError, match="Invalid index file"):
        VideoDecoder(video("h264_mkv"), index=bad)
    with pytest.raises(FileNotFoundError, match="missing"):
        VideoDecoder(video("h264_mkv"), index=tmp_path / "missing.gdidx")


def test_save_index_needs_exact_mode(video, tmp_path):
    from gpudecode import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="approximate"):
        VideoDecoder(video("h264_mkv"), seek_mode="approximate").save_index(tmp_path / "x.gdidx")


@pytest.mark.parametrize("name", ["h264_bframes", "h264_mkv"])
def test_index_cache_is_used_and_keyed_by_content(video, tmp_path, monkeypatch, name):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GPUDECODE_INDEX_CACHE", str(cache))
    src = tmp_path / f"v{video(name).suffix}"
    shutil.copy(video(name), src)
    first = VideoDecoder(src)
    assert first.index.method != "file"
    assert len(list(cache.glob("*-s0.gdidx"))) == 1  # plus a '-sbest' alias for stream_index=None
    second = VideoDecoder(src)
    assert second.index.method == "file"
    assert second.metadata == first.metadata
    np.testing.assert_array_equal(second[:].data, first[:].data)
    # A different file at the same path never gets the stale index.
    shutil.copy(video("bt709" if name == "h264_bframes" else "bt601"), src)
    third = VideoDecoder(src)
    assert third.index.method != "file"
    assert len(list(cache.glob("*-s0.gdidx"))) == 2
    # bytes sources share the cache (the key is the content, not the path)
    fourth = VideoDecoder(src.read_bytes())
    assert fourth.index.method == "file"


def test_cache_env_read_at_each_creation(video, tmp_path, monkeypatch):
    monkeypatch.delenv("GPUDECODE_INDEX_CACHE", raising=False)
    VideoDecoder(video("h264_mkv"))
    monkeypatch.setenv("GPUDECODE_INDEX_CACHE", str(tmp_path / "c"))
    VideoDecoder(video("h264_mkv"))
    assert len(list((tmp_path / "c").glob("*-s0.gdidx"))) == 1


def test_cache_directory_as_an_argument_overrides_the_environment(video, tmp_path, monkeypatch):
    monkeypatch.setenv("GPUDECODE_INDEX_CACHE", str(tmp_path / "env"))
    first = VideoDecoder(video("h264_mkv"), index_cache_dir=tmp_path / "arg")
    assert len(list((tmp_path / "arg").glob("*-s0.gdidx"))) == 1 and not (tmp_path / "env").exists()
    second = VideoDecoder(video("h264_mkv"), index_cache_dir=str(tmp_path / "arg"))
    assert second.index.method == "file" and second.metadata == first.metadata
    monkeypatch.delenv("GPUDECODE_INDEX_CACHE")
    assert VideoDecoder(video("h264_mkv")).index.method != "file"  # no argument, no variable: no cache


def test_corrupt_cache_entry_is_rebuilt(video, tmp_path, monkeypatch):
    monkeypatch.setenv("GPUDECODE_INDEX_CACHE", str(tmp_path))
    VideoDecoder(video("h264_mkv"))
    entries = [p for p in tmp_path.iterdir() if p.suffix == ".gdidx"]
    assert entries
    for entry in entries:
        entry.write_bytes(b"garbage")
    dec = VideoDecoder(video("h264_mkv"))
    assert dec.index.method != "file"
    assert len(dec) == 40


def test_cache_hit_opens_the_file_lazily(video, tmp_path, monkeypatch):
    """A CPU decoder served from the cache starts without the container and opens it on first use."""
    monkeypatch.setenv("GPUDECODE_INDEX_CACHE", str(tmp_path))
    path = video("rotated90")
    ref = VideoDecoder(path)
    for kwargs in ({}, {"stream_index": 0}):
        dec = VideoDecoder(path, **kwargs)
        assert dec.index.method == "file" and not dec._session.opened
        assert dec.metadata == ref.metadata and len(dec) == len(ref)
        assert not dec.cpu_fallback and dec.decoding_device == "cpu" and not dec._session.opened
        np.testing.assert_array_equal(dec.get_frames_at([3, 0, 39]).data, ref.get_frames_at([3, 0, 39]).data)
        assert dec._session.opened
        dec.close()
    unopened = VideoDecoder(path)
    unopened.close()  # closing a decoder that never opened its file is fine
    idx_file = tmp_path / "saved.gdidx"
    VideoDecoder(path).save_index(idx_file)
    assert VideoDecoder(path, index=idx_file).metadata == ref.metadata


# -- fuzz findings ------------------------------------------------------------------------------------------------
def test_expand_needs_tables_that_cover_every_sample():
    from gpudecode._index import _expand

    table = np.array([[3, 10], [2, 20], [2, 30]], dtype=np.int64)
    np.testing.assert_array_equal(_expand(table, 7), [10, 10, 10, 20, 20, 30, 30])
    assert _expand(table, 6) is None and _expand(table, 8) is None  # damaged: use a packet scan
    assert _expand(np.array([[4_000_000_000, 1]], dtype=np.int64), 7) is None  # and never allocate for it
    assert _expand(np.zeros((0, 2), dtype=np.int64), 1) is None
    assert _expand(np.array([[-1, 5], [8, 6]], dtype=np.int64), 7) is None  # a negative run, though the sum fits
    np.testing.assert_array_equal(_expand(np.array([[0, 5], [7, 6]], dtype=np.int64), 7), [6] * 7)  # empty runs: ok


def test_regression_huge_ctts_count_does_not_allocate(video):
    """Fuzz finding (seeds 11 and 13): a damaged ctts run count (billions) made np.repeat ask for ~50 GiB.

    FFmpeg drops the offsets of the overflowing run, so the tables no longer describe its packets: the index comes
    from a packet scan, and the frames before the damaged run are those of the undamaged file.
    """
    path = video("h264_bframes")
    data = bytearray(path.read_bytes())
    at = data.find(b"ctts")
    entries = int.from_bytes(data[at + 8 : at + 12], "big")
    last = at + 12 + 8 * (entries - 1)
    data[last : last + 4] = (0xF0000000).to_bytes(4, "big")  # the last run now "covers" 4 billion samples
    dec = VideoDecoder(bytes(data))
    ref = VideoDecoder(path)
    assert dec.index.method == "packet-scan" and len(dec) == len(ref)
    n = len(ref) - 3  # the last run's samples lost their offsets
    assert torch.equal(dec[:n], ref[:n])


class _DemuxFailsAfter:
    """A container whose demuxer raises ``error`` after ``n`` packets, as damaged data can make FFmpeg do."""

    def __init__(self, container, n, error):
        self._c, self._n, self._error = container, n, error

    def __getattr__(self, name):
        return getattr(self._c, name)

    def demux(self, *streams):
        for i, pkt in enumerate(self._c.demux(*streams)):
            if i == self._n:
                raise self._error
            yield pkt


@pytest.mark.parametrize(
    "error",
    [av.error.MemoryError(12, "Cannot allocate memory"), av.error.InvalidDataError(1094995529, "Invalid data found")],
)
def test_regression_scan_stops_at_any_ffmpeg_error(video, error, caplog):
    """Fuzz finding (seed 13): ENOMEM from a damaged size field leaked out of the packet scan as av's MemoryError."""
    with av.open(str(video("h264_mkv"))) as c:
        s = c.streams.video[0]
        pts, *_ = _scan_packets(_DemuxFailsAfter(c, 7, error), s)
    assert pts.shape[0] == 7
    messages = [r.getMessage() for r in caplog.records]
    assert f"gpudecode: stopped indexing at damaged data: {error}" in messages


def test_damaged_index_files_are_refused_never_misread(video, tmp_path):
    """A mutated index file must raise MediaError or give exactly the frames of the intact one: it carries a digest.

    (Before the digest, 3,000 mutations gave 8 leaked KeyError/IndexError and 561 silently accepted files.)
    """
    import random

    from fuzz import mutate

    path = video("h264_bframes")
    dec = VideoDecoder(path)
    good = tmp_path / "good.gdidx"
    dec.save_index(good)
    ref = dec.get_frames_at([0, 7, len(dec) - 1]).data
    data = good.read_bytes()
    rng = random.Random(5)
    refused = 0
    for i in range(300):
        mutated, _ = mutate(data, rng)
        target = tmp_path / f"m{i}.gdidx"
        target.write_bytes(mutated)
        try:
            other = VideoDecoder(path, index=target)
        except MediaError as exc:
            assert "Invalid index file" in str(exc)
            refused += 1
            continue
        assert torch.equal(other.get_frames_at([0, 7, len(dec) - 1]).data, ref)
    assert refused > 250
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    (tmp_path / "flip.gdidx").write_bytes(bytes(flipped))
    with pytest.raises(MediaError, match="digest does not match"):
        VideoDecoder(path, index=tmp_path / "flip.gdidx")


def test_consistent_but_impossible_index_is_refused(video, tmp_path):
    from dataclasses import replace

    from gpudecode._index_file import save_index_file

    dec = VideoDecoder(video("h264_bframes"))
    bad = replace(dec.index, start_key=np.full_like(dec.index.start_key, -3))
    save_index_file(bad, tmp_path / "bad.gdidx")  # a valid digest over impossible contents
    with pytest.raises(MediaError, match="inconsistent arrays"):
        VideoDecoder(video("h264_bframes"), index=tmp_path / "bad.gdidx")


def test_cache_entry_with_unusable_facts_is_rebuilt(video, tmp_path, monkeypatch):
    """A cache entry whose digest is fine but whose stream facts lack a field is ignored, not a KeyError."""
    from dataclasses import replace

    from gpudecode._index_file import load_index_file, save_index_file

    monkeypatch.setenv("GPUDECODE_INDEX_CACHE", str(tmp_path))
    path = video("h264_bframes")
    ref = VideoDecoder(path)
    entries = list(tmp_path.rglob("*.gdidx"))  # one per stream, and the "best stream" alias
    assert entries
    for entry in entries:
        idx = load_index_file(entry)
        facts = {k: v for k, v in idx.facts.items() if k != "pix_fmt"}
        save_index_file(replace(idx, facts=facts), entry)
    dec = VideoDecoder(path)
    assert len(dec) == len(ref) and torch.equal(dec[:], ref[:])


def test_zero_durations_are_filled_from_the_next_frame_in_presentation_order():
    """Packets without durations (zero): each frame lasts until the next frame shown, the last one the median gap.
    Written out by hand for a B-frame decode order (FFmpeg's demuxers fill durations for every container we can
    produce, MKV/MP4/MOV/NUT/FLV/TS, so this case is built from packet arrays)."""
    pts = np.array([0, 300, 100, 200, 600, 400, 500, 700])  # decode order; shown 0,100,...,700 with a gap
    dur = np.array([0, 0, 0, 0, 0, 0, 50, 0])  # one packet knows its duration
    key = np.array([1, 0, 0, 0, 1, 0, 0, 0], dtype=bool)
    idx = _from_packets(pts, dur, key, np.zeros(8, dtype=bool), np.arange(8) * 100, Fraction(1, 1000), "", 0, "x")
    assert idx.pts.tolist() == [0, 100, 200, 300, 400, 500, 600, 700]
    assert idx.duration.tolist() == [100, 100, 100, 100, 100, 50, 100, 100]
    # 400 and 500 follow keyframe 600 in decode order but are shown before it: they start from keyframe 0
    assert idx.start_key.tolist() == [0, 0, 0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize("name", ALL)
def test_start_keys_are_the_latest_keyframe_decoding_can_start_from(video, name):
    """Each frame starts decoding at the last keyframe before its packet (decode order), or one keyframe earlier
    for an open GOP's leading pictures (shown before their keyframe): never earlier than needed, never later.
    Oracle: a plain PyAV demux, walked packet by packet; also the keyframe flags and durations it reports."""
    path = video(name)
    with av.open(str(path)) as c:
        packets = [(p.pts, p.is_keyframe, p.duration, p.is_discard) for p in c.demux(video=0) if p.size]
    keys: list[int] = []  # keyframe pts, decode order
    start_of: dict[int, int] = {}
    for pts, key, _dur, _disc in packets:
        if key:
            keys.append(pts)
        k = len(keys) - 1
        while k > 0 and keys[k] > pts:  # a leading picture: its own keyframe is shown after it
            k -= 1
        start_of[pts] = max(k, 0)
    idx = VideoDecoder(path).index
    assert idx.key_pts.tolist() == keys
    assert idx.start_key.tolist() == [start_of[int(p)] for p in idx.pts]
    assert idx.is_key.tolist() == [int(p) in set(keys) for p in idx.pts]
    shown = sorted((pts, dur) for pts, _k, dur, disc in packets if not disc)
    assert idx.pts.tolist() == [p for p, _ in shown]
    if all(d > 0 for _, d in shown):  # the demuxer's durations, where it has them
        assert idx.duration.tolist() == [d for _, d in shown]


def _played_at_reference(pts: np.ndarray, t: float) -> int:
    """The frame shown at t: the last frame starting at or before t (the first frame before it), by brute force."""
    started = [i for i, p in enumerate(pts) if p <= t]
    return started[-1] if started else 0


@pytest.mark.parametrize("seed", range(12))
def test_time_lookups_against_a_brute_force_reference(seed):
    """frames_played_at / frames_played_in on variable-rate frame lists with gaps and B-frame decode order, against
    the definition evaluated frame by frame (float seconds as the decoder passes them)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    gaps = rng.choice([1, 2, 3, 7, 40], size=n)
    pts = np.cumsum(gaps) - gaps[0] + int(rng.integers(0, 50))
    durations = np.where(rng.random(n) < 0.3, 0, np.minimum(gaps, rng.integers(1, 8, n)))  # some unknown, some short
    order = list(range(n))
    for i in range(1, n - 1, 3):  # a B-frame-like decode order: the later picture of a pair first
        order[i], order[i + 1] = order[i + 1], order[i]
    key = np.zeros(n, dtype=bool)
    key[0] = True
    tb = Fraction(1, int(rng.choice([25, 1000, 90000])))
    idx = _from_packets(pts[order], durations[order], key, np.zeros(n, dtype=bool), np.arange(n), tb, "", 0, "x")
    assert idx.pts.tolist() == sorted(pts.tolist())
    secs = pts.astype(np.float64) * tb.numerator / tb.denominator  # as the decoder reports pts_seconds
    end = float((idx.pts[-1] + idx.duration[-1]) * tb)
    times = np.concatenate([secs, secs - 1e-9, secs + 1e-9, rng.uniform(secs[0], end, 30)])
    times = times[(times >= secs[0]) & (times < end)]
    got = idx.frames_played_at(times)
    assert got.tolist() == [_played_at_reference(secs, t) for t in times]
    for _ in range(30):
        t0, t1 = sorted(rng.uniform(secs[0], end, 2))
        if rng.random() < 0.3:
            t0 = float(rng.choice(secs))
        if rng.random() < 0.3:
            t1 = float(rng.choice(secs))
        if not t0 < t1:
            continue
        first = _played_at_reference(secs, t0)
        want = [first] + [i for i, p in enumerate(secs) if t0 < p < t1 and i != first]
        assert idx.frames_played_in(t0, t1).tolist() == sorted(want), (t0, t1)


@pytest.mark.parametrize("entry_from_end", [1, 2, 3])
def test_mp4_tables_shift_decode_times_as_ffmpegs_mov_demuxer_does(video, tmp_path, entry_from_end):
    """FFmpeg shifts an MP4 track's decode times by its most negative composition offset, but ignores the last two
    ctts entries (mov_read_ctts). A ctts v1 table whose negative offset sits at 1, 2 or 3 entries from the end: the
    table path must still agree with the demuxer (a plain packet scan), and be used."""
    data = bytearray(video("h264_bframes").read_bytes())
    at = data.find(b"ctts")
    entries = int.from_bytes(data[at + 8 : at + 12], "big")
    assert entries >= 4
    data[at + 4] = 1  # version 1: signed offsets
    e = at + 12 + 8 * (entries - entry_from_end)
    data[e + 4 : e + 8] = (-7 & 0xFFFFFFFF).to_bytes(4, "big")
    path = tmp_path / f"ctts{entry_from_end}.mp4"
    path.write_bytes(bytes(data))
    fast = VideoDecoder(path).index
    slow = _scan_index(path)
    assert fast.method == "mp4-tables"
    for field in ("pts", "duration", "is_key", "key_pts", "start_key"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field), err_msg=field)


def test_a_one_frame_mkv_is_indexed_by_a_packet_scan(media_dir):
    from media import Spec, make_video

    path = make_video(
        Spec("one_frame_mkv", container="matroska", num_frames=1, options={"preset": "veryfast"}),
        media_dir / "one_frame.mkv",
    )
    dec = VideoDecoder(path)
    assert dec.index.method == "packet-scan" and len(dec) == 1 and dec[0].shape == (3, 64, 96)


@pytest.mark.parametrize(("frames", "bframes"), [(1, 0), (2, 2), (3, 2), (30, 0), (7, 3)])
def test_short_and_b_frame_free_mp4s_use_the_tables(media_dir, frames, bframes):
    """A still, a few frames (ctts tables of one or two entries), and a track without B-frames (no ctts at all): the
    table path applies and agrees with a plain packet scan."""
    from media import Spec, make_video

    name = f"short_{frames}_{bframes}"
    path = make_video(
        Spec(name, num_frames=frames, options={"preset": "veryfast", "bf": str(bframes)}), media_dir / f"{name}.mp4"
    )
    idx = VideoDecoder(path).index
    assert idx.method == "mp4-tables" and idx.num_frames == frames
    slow = _scan_index(path)
    for field in ("pts", "duration", "is_key", "key_pts", "start_key"):
        np.testing.assert_array_equal(getattr(idx, field), getattr(slow, field), err_msg=field)
    _, pts, _ = oracle(str(path))
    np.testing.assert_allclose(idx.pts * float(idx.time_base), pts, atol=1e-9)


@pytest.mark.parametrize("damage", ["stts_count", "stts_delta"])
def test_damaged_stts_falls_back_to_a_packet_scan(video, tmp_path, damage):
    """An stts table that no longer describes the samples (a run count that overflows the track, or decode deltas
    that disagree with FFmpeg's index): the index comes from the packets, and the frames are the intact file's."""
    ref_path = video("h264_bframes")
    data = bytearray(ref_path.read_bytes())
    at = data.find(b"stts")
    if damage == "stts_count":
        data[at + 12 : at + 16] = (int.from_bytes(data[at + 12 : at + 16], "big") + 1).to_bytes(4, "big")
    else:  # FFmpeg reads the deltas too: make the last run's delta 1 larger and check we notice via the dts
        entries = int.from_bytes(data[at + 8 : at + 12], "big")
        e = at + 12 + 8 * (entries - 1)
        data[e + 4 : e + 8] = (int.from_bytes(data[e + 4 : e + 8], "big") + 1).to_bytes(4, "big")
    path = tmp_path / f"{damage}.mp4"
    path.write_bytes(bytes(data))
    dec, ref = VideoDecoder(path), VideoDecoder(ref_path)
    slow = _scan_index(path)
    np.testing.assert_array_equal(dec.index.pts, slow.pts)
    if damage == "stts_count":
        assert dec.index.method == "packet-scan"
        assert len(dec) == len(ref) and torch.equal(dec[:], ref[:])


class _Packet:
    def __init__(self, pts, dts=None, *, key=False, size=10, duration=0, stream_index=0, discard=False, pos=None):
        self.pts, self.dts, self.is_keyframe, self.size = pts, dts, key, size
        self.duration, self.stream_index, self.is_discard, self.pos = duration, stream_index, discard, pos


class _Scripted:
    """A container whose demuxer yields scripted packets (the attributes _scan_packets reads from av.Packet)."""

    def __init__(self, packets, fmt="matroska,webm"):
        self._packets = packets
        self.format = type("F", (), {"name": fmt})()
        self.streams = []

    def demux(self, stream):
        assert stream is not None
        yield from self._packets


def test_packet_scan_reads_what_each_packet_says():
    """Packet scan over scripted packets: pts, else dts; empty packets and other streams' packets skipped; durations,
    key and discard flags and byte positions as given (-1 when unknown); no timestamps at all is an error."""
    stream = type("S", (), {"index": 0})()
    packets = [
        _Packet(0, 0, key=True, duration=40, pos=100),
        _Packet(None, 40, duration=40, pos=200),
        _Packet(80, None, pos=None, discard=True),
        _Packet(5, 5, stream_index=1),
        _Packet(120, 120, size=0),
        _Packet(160, 100, key=True, duration=40, pos=400),
    ]
    pts, dur, key, disc, pos = _scan_packets(_Scripted(packets), stream)
    assert pts.tolist() == [0, 40, 80, 160]
    assert dur.tolist() == [40, 40, 0, 40]
    assert key.tolist() == [True, False, False, True] and disc.tolist() == [False, False, True, False]
    assert pos.tolist() == [100, 200, -1, 400]
    with pytest.raises(MediaError, match="carry no timestamps") as e:
        _scan_packets(_Scripted([_Packet(0, 0, key=True), _Packet(None, None)]), stream)
    assert str(e.value) == (
        "The video stream's packets carry no timestamps, so an exact index cannot be built. Use "
        "seek_mode='approximate' if the header gives a frame count or a duration."
    )


def test_packet_scan_of_a_raw_elementary_stream():
    """Raw H.264/HEVC: packet k gets k frame durations as its timestamp (the parser's duration, else one frame at the
    stream's rate), every packet that duration, and only the first packet is a place to start decoding."""
    from fractions import Fraction

    rated = type(
        "S", (), {"index": 0, "average_rate": Fraction(30), "guessed_rate": None, "time_base": Fraction(1, 1_200_000)}
    )()
    raw = [_Packet(None, None, key=True), _Packet(None, None, key=True), _Packet(None, None)]
    pts, dur, key, _disc, _pos = _scan_packets(_Scripted(raw, fmt="h264"), rated)
    assert pts.tolist() == [0, 40_000, 80_000] and dur.tolist() == [40_000] * 3  # 1/30 s at 1/1,200,000
    assert key.tolist() == [True, False, False]
    timed = [_Packet(None, None, duration=3000), _Packet(None, None, duration=3000)]
    pts, dur, *_ = _scan_packets(_Scripted(timed, fmt="hevc"), rated)
    assert pts.tolist() == [0, 3000] and dur.tolist() == [3000, 3000]  # the parser's duration wins


def test_mp4_table_path_declines_what_it_cannot_map(video):
    """_from_mp4_tables returns None (a packet scan follows) for fragmented files, a track the moov walk did not
    find, a track without stts or samples, and an FFmpeg index whose entry count differs from the sample count."""
    from types import SimpleNamespace

    from gpudecode._index import _from_mp4_tables
    from gpudecode._mp4 import read_mp4_info

    path = video("h264_bframes")
    with av.open(str(path)) as c, open(path, "rb") as f:
        s = c.streams.video[0]
        info = read_mp4_info(f, path.stat().st_size)
        assert info is not None
        track = info.track(s.id)
        assert _from_mp4_tables(s, info, None) is not None  # the intact file maps

        def with_track(t, fragmented=False):
            return SimpleNamespace(fragmented=fragmented, track=lambda _id: t)

        assert _from_mp4_tables(s, with_track(track, fragmented=True), None) is None
        assert _from_mp4_tables(s, with_track(None), None) is None
        stts, ctts, count = track.stts, track.ctts, track.sample_count
        assert _from_mp4_tables(s, with_track(SimpleNamespace(stts=None, ctts=ctts, sample_count=count)), None) is None
        assert _from_mp4_tables(s, with_track(SimpleNamespace(stts=stts, ctts=ctts, sample_count=0)), None) is None
        assert (
            _from_mp4_tables(s, with_track(SimpleNamespace(stts=stts, ctts=ctts, sample_count=count + 1)), None) is None
        )


def test_table_check_against_the_demuxer():
    """_check_against_demux: the first packets' pts (else dts; empty packets skipped) must equal the table's; only as
    many packets as it needs are read; a demuxer error means the tables are not trusted."""
    from gpudecode._index import _check_against_demux

    stream = type("S", (), {"index": 0})()
    table = np.arange(10) * 100
    good = [_Packet(None, None, size=0)] + [_Packet(p, p) for p in range(0, 600, 100)]
    assert _check_against_demux(_Scripted([*good, _Packet(999, 999)]), stream, table)  # the 7th is never read
    assert _check_against_demux(_Scripted([_Packet(None, p) for p in range(0, 600, 100)]), stream, table)
    assert not _check_against_demux(_Scripted([_Packet(p + 1, p) for p in range(0, 600, 100)]), stream, table)
    assert not _check_against_demux(_Scripted([_Packet(None, None, size=0), _Packet(5, 5)]), stream, table)
    assert _check_against_demux(_Scripted([_Packet(0, 0), _Packet(100, 100)]), stream, table[:2], count=6)

    class Failing(_Scripted):
        def demux(self, stream):
            yield _Packet(0, 0)
            raise av.error.InvalidDataError(1094995529, "Invalid data found")

    assert not _check_against_demux(Failing([]), stream, table)


def test_to_seconds_with_time_bases_whose_numerator_is_not_one():
    from gpudecode._index import to_seconds

    np.testing.assert_allclose(to_seconds(np.array([0, 30, 30000]), Fraction(1001, 30000)), [0.0, 1.001, 1001.0])
    np.testing.assert_allclose(to_seconds(np.array([3, -2]), Fraction(2, 5)), [1.2, -0.8])
    assert to_seconds(np.array([7], dtype=np.int64), Fraction(1, 1)).dtype == np.float64


def test_index_building_opens_the_file_once_when_nothing_needs_more(video):
    """A stream that starts on a keyframe, indexed by a packet scan (MKV) or from the tables (MP4): one open, no
    decoding of a lead (only a stream cut mid-GOP needs that)."""
    from gpudecode._index import build_exact_index
    from gpudecode._mp4 import read_mp4_info

    for name in ("h264_mkv", "h264_bframes"):
        path = video(name)
        opened = []

        def open_stream(path=path, opened=opened):
            c = av.open(str(path))
            opened.append(c)
            return c, c.streams.video[0]

        mp4 = None
        if path.suffix == ".mp4":
            with open(path, "rb") as f:
                mp4 = read_mp4_info(f, path.stat().st_size)
        idx = build_exact_index(open_stream, mp4, path.stat().st_size, "key")
        assert len(opened) == 1, name
        assert idx.source_key == "key" and idx.method == ("mp4-tables" if mp4 else "packet-scan")
        for c in opened:
            c.close()


def test_tables_that_disagree_with_the_demuxer_give_way_to_a_fresh_packet_scan(video, monkeypatch, caplog):
    from gpudecode import _index

    monkeypatch.setattr(_index, "_check_against_demux", lambda *a, **k: False)
    path = video("h264_bframes")
    with caplog.at_level("DEBUG", logger="gpudecode"):
        idx = VideoDecoder(path).index
    assert idx.method == "packet-scan"
    np.testing.assert_array_equal(idx.pts, _scan_index(path).pts)  # from the first packet: a fresh container
    assert "gpudecode: MP4 tables disagree with the demuxer; scanning packets instead" in [
        r.getMessage() for r in caplog.records
    ]


def test_a_stream_without_packets_is_a_media_error(video, monkeypatch):
    from gpudecode import _index

    empty = tuple(np.zeros(0, dtype=t) for t in (np.int64, np.int64, bool, bool, np.int64))
    monkeypatch.setattr(_index, "_scan_packets", lambda c, s: empty)
    with pytest.raises(MediaError, match="no packets") as e:
        VideoDecoder(video("h264_mkv"))
    assert str(e.value) == "The video stream has no packets: there is nothing to decode."


def test_every_packet_discarded_is_a_media_error():
    with pytest.raises(MediaError, match="no decodable frames") as e:
        _from_packets(
            np.array([0, 1]),
            np.array([1, 1]),
            np.array([True, False]),
            np.array([True, True]),
            np.array([0, 10]),
            Fraction(1, 25),
            "",
            0,
            "x",
        )
    assert str(e.value) == "The video stream has no decodable frames (every packet is empty or discarded)."


def _joined_packets():
    """Two segments joined without re-encoding, in decode order: 0..120, then 100..180 (steps back, no repeat)."""
    pts = np.array([0, 40, 80, 120, 100, 140, 180])
    key = np.array([True, False, False, False, True, False, False])
    return pts, np.full(7, 40), key, np.zeros(7, dtype=bool), np.arange(7) * 10


def test_a_step_back_without_repeated_timestamps_gets_a_decode_timeline():
    """Timestamps that step back at a keyframe start a segment even when none repeats: frames in segment order,
    a private decode timeline of one step (the median duration) per packet, byte positions to stamp packets by
    (the first at byte 0). Written out by hand from the rule in _timeline."""
    idx = _from_packets(*_joined_packets(), Fraction(1, 1000), "k", 0, "x")
    assert idx.pts.tolist() == [0, 40, 80, 120, 100, 140, 180]
    assert idx.segment_starts.tolist() == [0, 4]
    assert idx.plan_step == 40
    assert idx.plan_pts.tolist() == [0, 40, 80, 120, 160, 200, 240]
    assert idx.plan_key_pts.tolist() == [0, 160] and idx.key_pts.tolist() == [0, 100]
    assert idx.packet_pos.tolist() == [0, 10, 20, 30, 40, 50, 60]
    assert idx.start_key.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert idx.is_key.dtype == bool and idx.is_key.tolist() == [True, False, False, False, True, False, False]
    assert idx.source_key == "k" and idx.method == "x" and idx.time_base == Fraction(1, 1000)
    for name in ("pts", "duration", "key_pts", "start_key"):
        assert getattr(idx, name).dtype == np.int64, name


def test_a_joined_stream_that_does_not_start_on_a_keyframe():
    pts, dur, key, disc, pos = _joined_packets()
    key = key.copy()
    key[0] = False  # cut before the first keyframe: decoding can only start at the first packet
    idx = _from_packets(pts, dur, key, disc, pos, Fraction(1, 1000), "k", 0, "x")
    assert idx.plan_key_pts.tolist() == [0, 160] and idx.key_pts.tolist() == [0, 100]
    assert idx.start_key.tolist() == [0, 0, 0, 0, 1, 1, 1]
    # one segment, first packet not a keyframe; 40 is a leading picture of keyframe 80: it starts at packet 0
    plain = _from_packets(
        np.array([0, 80, 40, 120]),
        np.full(4, 40),
        np.array([False, True, False, False]),
        np.zeros(4, bool),
        np.arange(4) * 10,
        Fraction(1, 1000),
        "",
        0,
        "x",
    )
    assert plain.plan_pts is None and plain.pts.tolist() == [0, 40, 80, 120]
    assert plain.key_pts.tolist() == [0, 80] and plain.start_key.tolist() == [0, 0, 1, 1]
    assert plain.is_key.tolist() == [True, False, True, False]


@pytest.mark.parametrize("positions", [np.array([-1] * 7), np.array([0, 10, 20, 30, 30, 50, 60])])
def test_a_step_back_without_usable_positions_warns_and_goes_by_timestamps(positions, caplog):
    pts, dur, key, disc, _ = _joined_packets()
    with caplog.at_level("WARNING", logger="gpudecode"):
        idx = _from_packets(pts, dur, key, disc, positions, Fraction(1, 1000), "", 0, "x")
    assert idx.plan_pts is None and idx.segment_starts is None
    assert [r.getMessage() for r in caplog.records] == [
        "gpudecode: the stream's timestamps repeat or step back and its packets have no byte positions to tell them "
        "apart; frames with equal timestamps may be confused"
    ]
    caplog.clear()
    with caplog.at_level("WARNING", logger="gpudecode"):
        plain = _from_packets(
            np.array([0, 80, 40]),
            np.full(3, 40),
            np.array([True, False, False]),
            np.zeros(3, bool),
            np.full(3, -1),
            Fraction(1, 1000),
            "",
            0,
            "x",
        )
    assert plain.plan_pts is None and not caplog.records  # ordinary timestamps need no positions


def test_filled_durations_written_out():
    """Missing (zero) durations: the gap to the next frame, where that gap is positive; else (repeated timestamps, the
    last frame) the median positive gap; 1 when no gap is positive."""
    from gpudecode._index import _filled_durations

    def fill(pts, dur):
        return _filled_durations(np.array(pts), np.array(dur)).tolist()

    assert fill([0, 0, 10], [0, 0, 0]) == [10, 10, 10]  # a repeated timestamp: the median positive gap (not 5)
    assert fill([5, 5, 5], [0, 0, 0]) == [1, 1, 1]  # no positive gap at all
    assert fill([0, 1, 3, 5], [0, 0, 0, 0]) == [1, 2, 2, 2]  # gaps of 1 are gaps too
    assert fill([0, 1, 2, 2], [0, 0, 0, 0]) == [1, 1, 1, 1]  # every positive gap is 1 (a time base of one frame)
    assert fill([0, 40, 120, 160], [0, 7, 0, 0]) == [40, 7, 40, 40]  # known durations stay; median of 40, 80, 40
    assert fill([0, 10], [3, 4]) == [3, 4]


def test_median_int_is_numpys_median_truncated():
    """The creation path's median (frame durations, the plan step) equals ``int(np.median(a))``, also where the
    two middle values' mean is a half or their float64 sum rounds (values beyond 2**53)."""
    rng = np.random.default_rng(7)
    for i in range(3000):
        high = int(rng.choice([3, 1001, 2**40, 2**62]))
        a = rng.integers(-high if i % 2 else 0, high, int(rng.integers(1, 30)), dtype=np.int64)
        assert median_int(a) == int(np.median(a)), a
