"""Samplers: shapes, ranges, equality with single-frame access, policies, reproducibility, one batched decode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media import SPECS

from gpudecode import InvalidArgumentError, VideoDecoder, samplers

VIDEOS = ["h264_bframes", "vfr", "nonzero_start", "editlist", "hevc8", "rotated90"]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def decoders(video):
    cache = {}

    def get(name, mode="exact", order="NCHW"):
        key = (name, mode, order)
        if key not in cache:
            cache[key] = VideoDecoder(video(name), seek_mode=mode, dimension_order=order)
        return cache[key]

    return get


def _shape_ok(batch, dec, num_clips, per_clip):
    m = dec.metadata
    tail = (3, m.height, m.width) if batch.data.shape[-1] != 3 else (m.height, m.width, 3)
    assert tuple(batch.data.shape) == (num_clips, per_clip, *tail)
    assert tuple(batch.pts_seconds.shape) == (num_clips, per_clip)
    assert tuple(batch.duration_seconds.shape) == (num_clips, per_clip)
    assert batch.data.dtype == torch.uint8 and batch.pts_seconds.dtype == torch.float64


@SETTINGS
@given(
    name=st.sampled_from(VIDEOS),
    kind=st.sampled_from(["random", "regular"]),
    num_clips=st.integers(1, 6),
    per_clip=st.integers(1, 6),
    step=st.integers(1, 4),
    start=st.integers(0, 20),
    width=st.integers(1, 30),
    policy=st.sampled_from(["repeat_last", "wrap"]),
    seed=st.integers(0, 2**31 - 1),
    explicit_end=st.booleans(),
)
def test_index_samplers_property(
    decoders, name, kind, num_clips, per_clip, step, start, width, policy, seed, explicit_end
):
    dec = decoders(name)
    n = len(dec)
    start = min(start, n - 1)
    end = min(n, start + width) if explicit_end else None
    span = step * (per_clip - 1) + 1
    if end is None and start >= max(n - span + 1, 1):
        with pytest.raises(InvalidArgumentError, match="cannot fit"):
            samplers.clips_at_random_indices(
                dec,
                num_clips=num_clips,
                num_frames_per_clip=per_clip,
                num_indices_between_frames=step,
                sampling_range_start=start,
            )
        return
    fn = samplers.clips_at_random_indices if kind == "random" else samplers.clips_at_regular_indices
    kwargs = {"generator": torch.Generator().manual_seed(seed)} if kind == "random" else {}
    batch = fn(
        dec,
        num_clips=num_clips,
        num_frames_per_clip=per_clip,
        num_indices_between_frames=step,
        sampling_range_start=start,
        sampling_range_end=end,
        policy=policy,
        **kwargs,
    )
    _shape_ok(batch, dec, num_clips, per_clip)
    pts = dec.index.pts * float(dec.index.time_base)
    real_end = end if end is not None else max(n - span + 1, 1)
    for c in range(num_clips):
        first = int(np.argmin(np.abs(pts - batch.pts_seconds[c, 0].item())))
        assert start <= first < real_end
        # Reconstruct the clip's indices with the policy and compare every frame with get_frame_at.
        idx = list(range(first, min(first + span, n), step))
        if len(idx) < per_clip:
            idx = (
                idx + [idx[-1]] * (per_clip - len(idx))
                if policy == "repeat_last"
                else (idx * (per_clip // len(idx) + 1))[:per_clip]
            )
        for k, i in enumerate(idx):
            f = dec.get_frame_at(i)
            assert torch.equal(batch.data[c, k], f.data)
            assert batch.pts_seconds[c, k].item() == pytest.approx(f.pts_seconds)


@SETTINGS
@given(
    name=st.sampled_from(VIDEOS),
    num_clips=st.integers(1, 5),
    per_clip=st.integers(1, 5),
    gap=st.floats(0.01, 0.3),
    start_frac=st.floats(0, 0.5),
    seed=st.integers(0, 2**31 - 1),
    policy=st.sampled_from(["repeat_last", "wrap"]),
    mode=st.sampled_from(["exact", "approximate"]),
)
def test_timestamp_samplers_property(decoders, name, num_clips, per_clip, gap, start_frac, seed, policy, mode):
    dec = decoders(name, mode)
    m = dec.metadata
    begin, end = m.begin_stream_seconds, m.end_stream_seconds
    s = begin + start_frac * (end - begin)
    e_default = end - (per_clip - 1) * gap
    if s >= e_default:
        with pytest.raises(InvalidArgumentError, match="empty"):
            samplers.clips_at_random_timestamps(
                dec,
                num_clips=num_clips,
                num_frames_per_clip=per_clip,
                seconds_between_frames=gap,
                sampling_range_start=s,
            )
        return
    g = torch.Generator().manual_seed(seed)
    batch = samplers.clips_at_random_timestamps(
        dec,
        num_clips=num_clips,
        num_frames_per_clip=per_clip,
        seconds_between_frames=gap,
        sampling_range_start=s,
        policy=policy,
        generator=g,
    )
    _shape_ok(batch, dec, num_clips, per_clip)
    g = torch.Generator().manual_seed(seed)
    starts = (torch.rand(num_clips, generator=g, dtype=torch.float64) * (min(e_default, end) - s) + s).tolist()
    for c, t0 in enumerate(starts):
        times = [t0 + k * gap for k in range(per_clip)]
        assert all(t < end for t in times)
        frames = dec.get_frames_played_at(times)
        assert torch.equal(batch.data[c], frames.data)
        assert torch.equal(batch.pts_seconds[c], frames.pts_seconds)
        if mode == "exact":
            # the frame shown at t is the last one starting at or before t (container durations may be wrong)
            all_pts = dec.index.pts * float(dec.index.time_base)
            expect = all_pts[np.searchsorted(all_pts, np.array(times) + 1e-12, side="right") - 1]
            np.testing.assert_allclose(batch.pts_seconds[c].numpy(), expect, atol=1e-9)
        elif SPECS[name].header_exact:
            assert (batch.pts_seconds[c] <= torch.tensor(times, dtype=torch.float64) + 1e-9).all()


@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_regular_timestamps(decoders, mode):
    dec = decoders("h264_bframes", mode)
    batch = samplers.clips_at_regular_timestamps(dec, seconds_between_clip_starts=0.3, num_frames_per_clip=3)
    # starts 0, .3, .6, .9, 1.2, 1.5 (< end - 2 frames = 1.52); frames are those shown at each time
    assert batch.data.shape[:2] == (6, 3)
    np.testing.assert_allclose(batch.pts_seconds[:, 0].numpy(), [0, 0.28, 0.6, 0.88, 1.2, 1.48], atol=1e-9)
    np.testing.assert_allclose(batch.pts_seconds[0].numpy(), [0, 0.04, 0.08], atol=1e-9)


def test_regular_indices_are_evenly_spaced_and_deterministic(decoders):
    dec = decoders("h264_bframes")
    a = samplers.clips_at_regular_indices(dec, num_clips=4, num_frames_per_clip=2, num_indices_between_frames=3)
    b = samplers.clips_at_regular_indices(dec, num_clips=4, num_frames_per_clip=2, num_indices_between_frames=3)
    assert torch.equal(a.data, b.data)
    # span 4 -> starts in [0, 37): linspace(0, 36, 4) = 0, 12, 24, 36
    np.testing.assert_allclose(a.pts_seconds[:, 0].numpy() * 25, [0, 12, 24, 36], atol=1e-6)
    np.testing.assert_allclose(a.pts_seconds[:, 1].numpy() * 25, [3, 15, 27, 39], atol=1e-6)


def test_global_seed_reproduces_draws(decoders):
    dec = decoders("hevc8")
    torch.manual_seed(123)
    a = samplers.clips_at_random_indices(dec, num_clips=3, num_frames_per_clip=2)
    torch.manual_seed(123)
    b = samplers.clips_at_random_indices(dec, num_clips=3, num_frames_per_clip=2)
    assert torch.equal(a.pts_seconds, b.pts_seconds)
    torch.manual_seed(5)
    c = samplers.clips_at_random_timestamps(dec, num_clips=3, num_frames_per_clip=2)
    torch.manual_seed(5)
    d = samplers.clips_at_random_timestamps(dec, num_clips=3, num_frames_per_clip=2)
    assert torch.equal(c.pts_seconds, d.pts_seconds)


@pytest.mark.parametrize("policy", ["repeat_last", "wrap"])
def test_policies_pad_clips_past_the_end(decoders, policy):
    dec = decoders("h264_bframes")
    batch = samplers.clips_at_regular_indices(
        dec,
        num_clips=1,
        num_frames_per_clip=5,
        num_indices_between_frames=2,
        sampling_range_start=36,
        sampling_range_end=37,
        policy=policy,
    )
    idx = np.round(batch.pts_seconds[0].numpy() * 25).astype(int).tolist()
    assert idx == ([36, 38, 38, 38, 38] if policy == "repeat_last" else [36, 38, 36, 38, 36])
    tb = samplers.clips_at_regular_timestamps(
        dec,
        seconds_between_clip_starts=1,
        num_frames_per_clip=4,
        seconds_between_frames=0.2,
        sampling_range_start=1.3,
        sampling_range_end=1.4,
        policy=policy,
    )
    got = np.round(tb.pts_seconds[0].numpy() * 25).astype(int).tolist()
    assert got == ([32, 37, 37, 37] if policy == "repeat_last" else [32, 37, 32, 37])


def test_policy_error_names_the_clip(decoders):
    dec = decoders("h264_bframes")
    with pytest.raises(InvalidArgumentError, match=r"Invalid clip 0: with policy='error', it starts at frame 36"):
        samplers.clips_at_regular_indices(
            dec,
            num_clips=1,
            num_frames_per_clip=5,
            num_indices_between_frames=2,
            sampling_range_start=36,
            sampling_range_end=37,
            policy="error",
        )
    with pytest.raises(InvalidArgumentError, match=r"Invalid clip 0: with policy='error', it starts at 1.3"):
        samplers.clips_at_regular_timestamps(
            dec,
            seconds_between_clip_starts=1,
            num_frames_per_clip=4,
            seconds_between_frames=0.2,
            sampling_range_start=1.3,
            sampling_range_end=1.4,
            policy="error",
        )


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"num_clips": 0}, r"Invalid num_clips \(0\)"),
        ({"num_clips": -2}, r"Invalid num_clips \(-2\)"),
        ({"num_frames_per_clip": 0}, r"Invalid num_frames_per_clip \(0\)"),
        ({"num_indices_between_frames": 0}, r"Invalid num_indices_between_frames \(0\)"),
        ({"sampling_range_start": 40}, r"Invalid sampling_range_start \(40\)"),
        ({"sampling_range_start": 10, "sampling_range_end": 10}, r"Invalid sampling range \[10, 10\): it is empty"),
        ({"sampling_range_start": 10, "sampling_range_end": 5}, r"it is empty"),
        ({"sampling_range_end": -41}, r"Invalid sampling_range_end \(-41\)"),
        ({"policy": "clamp"}, r"Invalid policy \('clamp'\)\. Supported values are: repeat_last, wrap, error\."),
        ({"num_clips": 1.5}, r"Invalid num_clips"),
    ],
)
def test_index_sampler_validation(decoders, kwargs, pattern):
    with pytest.raises(InvalidArgumentError, match=pattern):
        samplers.clips_at_random_indices(decoders("h264_bframes"), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"num_clips": 0}, r"Invalid num_clips \(0\)"),
        ({"seconds_between_frames": 0}, r"Invalid seconds_between_frames \(0.0\)"),
        ({"seconds_between_frames": float("nan")}, r"finite numbers of seconds"),
        ({"sampling_range_start": float("inf")}, r"finite numbers of seconds"),
        ({"sampling_range_start": -1.0}, r"Invalid sampling_range_start \(-1.0\)"),
        ({"sampling_range_start": 5.0}, r"Invalid sampling_range_start \(5.0\)"),
        ({"sampling_range_end": -1.0}, r"Invalid sampling_range_end \(-1.0\)"),
        ({"sampling_range_start": 1.0, "sampling_range_end": 0.5}, r"it is empty"),
        ({"num_frames_per_clip": 100}, r"it is empty"),
    ],
)
def test_time_sampler_validation(decoders, kwargs, pattern):
    with pytest.raises(InvalidArgumentError, match=pattern):
        samplers.clips_at_random_timestamps(decoders("h264_bframes"), **kwargs)
    with pytest.raises(InvalidArgumentError, match="seconds_between_clip_starts"):
        samplers.clips_at_regular_timestamps(decoders("h264_bframes"), seconds_between_clip_starts=0)


def test_sampling_range_end_past_the_end_is_clamped(decoders):
    """As torchcodec: a range end past the video's end means the end (then the policy applies)."""
    dec = decoders("h264_bframes")
    for fn, extra in ((samplers.clips_at_random_indices, True), (samplers.clips_at_regular_indices, False)):
        kw = [{"generator": torch.Generator().manual_seed(3)} if extra else {} for _ in range(2)]
        a = fn(dec, num_clips=4, num_frames_per_clip=3, sampling_range_end=10**6, **kw[0])
        b = fn(dec, num_clips=4, num_frames_per_clip=3, sampling_range_end=len(dec), **kw[1])
        assert torch.equal(a.pts_seconds, b.pts_seconds) and torch.equal(a.data, b.data)
    end = dec.metadata.end_stream_seconds
    a = samplers.clips_at_random_timestamps(
        dec,
        num_clips=4,
        num_frames_per_clip=2,
        sampling_range_end=end + 100.0,
        generator=torch.Generator().manual_seed(3),
    )
    b = samplers.clips_at_random_timestamps(
        dec, num_clips=4, num_frames_per_clip=2, sampling_range_end=end, generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(a.pts_seconds, b.pts_seconds)


def test_numpy_and_tensor_integers_are_accepted(decoders):
    dec = decoders("h264_bframes")
    a = samplers.clips_at_regular_indices(dec, num_clips=np.int64(3), num_frames_per_clip=torch.tensor(2))
    b = samplers.clips_at_regular_indices(dec, num_clips=3, num_frames_per_clip=2)
    assert torch.equal(a.pts_seconds, b.pts_seconds)


def test_not_a_decoder():
    with pytest.raises(InvalidArgumentError, match="Invalid decoder"):
        samplers.clips_at_random_indices("video.mp4")


@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_one_batched_decode(decoders, mode):
    """All clips come from one planned pass: each frame converted once, packets fed at most once."""
    dec = decoders("hevc8", mode)
    samplers.clips_at_regular_indices(dec, num_clips=6, num_frames_per_clip=4, num_indices_between_frames=2)
    s = dec.stats
    assert s.frames_converted <= 24
    # Runs decoded in parallel may each read a few packets past the next keyframe before the decoder releases
    # their last frame (B-frame reorder delay): bounded overlap, never a whole keyframe interval twice.
    reorder = 4
    assert s.packets_fed <= len(dec) + 4 + reorder * (dec._session.num_threads - 1)


def test_nhwc_decoder(decoders):
    dec = decoders("rotated90", "exact", "NHWC")
    batch = samplers.clips_at_random_indices(dec, num_clips=2, num_frames_per_clip=3)
    assert batch.data.shape == (2, 3, 96, 64, 3)


def test_defaults_are_torchcodec_s_one_clip_of_one_frame(decoders):
    """Called with only what has no default, every sampler gives torchcodec's default: one clip of one frame."""
    dec = decoders("h264_bframes")
    for batch in (
        samplers.clips_at_random_indices(dec),
        samplers.clips_at_regular_indices(dec),
        samplers.clips_at_random_timestamps(dec),
        samplers.clips_at_regular_timestamps(dec, seconds_between_clip_starts=100.0),
    ):
        assert batch.data.shape == (1, 1, 3, dec.metadata.height, dec.metadata.width)
        assert batch.pts_seconds.shape == batch.duration_seconds.shape == (1, 1)


@pytest.mark.parametrize(
    ("field", "value"), [("end_stream_seconds", None), ("average_fps", None), ("average_fps", 0.0)]
)
def test_time_samplers_refuse_a_decoder_without_an_end_or_a_rate(video, field, value):
    """A stream whose metadata has no end time, or no rate (a one-frame stream without a header rate), cannot be
    sampled by time: the error says so and points to the index samplers (the metadata is edited to get one)."""
    import dataclasses

    dec = VideoDecoder(video("h264_bframes"))
    dec._metadata = dataclasses.replace(dec.metadata, **{field: value})
    want = r"^Invalid decoder for time-based sampling: its metadata has no end time or frame rate\. Use an index-based"
    for call in (
        lambda: samplers.clips_at_random_timestamps(dec),
        lambda: samplers.clips_at_regular_timestamps(dec, seconds_between_clip_starts=1.0),
    ):
        with pytest.raises(InvalidArgumentError, match=want):
            call()
    assert samplers.clips_at_random_indices(dec).data.shape[:2] == (1, 1)  # the index samplers still work


def _raises_exactly(call, message: str, error: type = InvalidArgumentError) -> None:
    import re

    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        call()


def test_index_sampler_errors_word_for_word(decoders):
    """Each refusal of the index samplers, with its whole message (the values in it are the video's: 40 frames)."""
    dec = decoders("h264_bframes")
    n = len(dec)
    assert n == 40
    rand, reg = samplers.clips_at_random_indices, samplers.clips_at_regular_indices
    _raises_exactly(lambda: rand("video.mp4"), "Invalid decoder (str). Supported values are: a gpudecode.VideoDecoder.")
    _raises_exactly(
        lambda: rand(dec, sampling_range_start=40),
        "Invalid sampling_range_start (40). Supported values are -40..39 for a video of 40 frames.",
    )
    _raises_exactly(
        lambda: rand(dec, sampling_range_start="1"),
        "Invalid sampling_range_start ('1'). Supported values are: integers.",
    )
    _raises_exactly(
        lambda: rand(dec, sampling_range_end="1"), "Invalid sampling_range_end ('1'). Supported values are: integers."
    )
    # the default end: the last start at which a whole clip of span 10 fits is 30 (exclusive end 31)
    _raises_exactly(
        lambda: reg(dec, num_frames_per_clip=10, sampling_range_start=31),
        "Invalid sampling range: clips of span 10 frames starting at or after sampling_range_start (31) cannot fit "
        "in the video's 40 frames (the default sampling_range_end is 31). Pass a smaller sampling_range_start or an "
        "explicit sampling_range_end with a policy.",
    )
    assert reg(dec, num_frames_per_clip=10, sampling_range_start=30).pts_seconds.shape == (1, 10)  # 30 still fits
    _raises_exactly(  # an end of 0 is frame 0, not 'from the end'
        lambda: rand(dec, sampling_range_end=0),
        "Invalid sampling range [0, 0): it is empty. Supported ranges have sampling_range_start < sampling_range_end.",
    )
    _raises_exactly(
        lambda: rand(
            dec, num_clips=1, num_frames_per_clip=3, sampling_range_start=38, sampling_range_end=39, policy="error"
        ),
        "Invalid clip 0: with policy='error', it starts at frame 38 and needs 3 frames 1 apart, but only 2 fit before "
        "the end of the video (40 frames). Supported clips end inside the video; leave sampling_range_end at its "
        "default, or use policy='repeat_last' or 'wrap'.",
    )


def test_a_clip_as_long_as_the_video_can_only_start_at_frame_0(decoders):
    dec = decoders("h264_bframes")
    g = torch.Generator().manual_seed(0)
    for batch in (
        samplers.clips_at_random_indices(dec, num_clips=12, num_frames_per_clip=40, generator=g),
        samplers.clips_at_regular_indices(dec, num_clips=3, num_frames_per_clip=40),
    ):
        assert torch.equal(batch.pts_seconds[:, 0], batch.pts_seconds[:1, 0].expand(batch.pts_seconds.shape[0]))


def test_time_sampler_errors_word_for_word(decoders):
    """Each refusal of the time samplers, with its whole message; the range bounds are checked at their edges."""
    dec = decoders("h264_bframes")
    m = dec.metadata
    begin, end = m.begin_stream_seconds, m.end_stream_seconds
    rand, reg = samplers.clips_at_random_timestamps, samplers.clips_at_regular_timestamps
    type_error = "Supported values are: finite numbers of seconds."
    for name in ("seconds_between_clip_starts", "seconds_between_frames", "sampling_range_start", "sampling_range_end"):
        kwargs = {"seconds_between_clip_starts": 1.0, name: "x"}
        _raises_exactly(lambda kw=kwargs: reg(dec, **kw), f"Invalid {name} ('x'). {type_error}")
    _raises_exactly(
        lambda: rand(dec, seconds_between_frames=0.0),
        "Invalid seconds_between_frames (0.0). Supported values are: numbers > 0, or None for one frame duration.",
    )
    _raises_exactly(
        lambda: rand(dec, sampling_range_start=end),
        f"Invalid sampling_range_start ({end}). Supported values are in [{begin}, {end}), the times the stream plays.",
    )
    _raises_exactly(
        lambda: rand(dec, sampling_range_end=begin),
        f"Invalid sampling_range_end ({begin}). Supported values are > {begin}, the stream's start (values past its "
        "end are clamped to it).",
    )
    s = begin + 0.5
    _raises_exactly(
        lambda: rand(dec, sampling_range_start=s, sampling_range_end=s),
        f"Invalid sampling range [{s}, {s}): it is empty. Clips of 1 frames 0.04 s apart need sampling_range_start < "
        "sampling_range_end; pass a smaller sampling_range_start or an explicit sampling_range_end with a policy.",
    )
