"""Raw H.264/HEVC elementary streams (.h264/.265, as cameras and encoders dump them): no container timestamps.

Frame ``i`` is the ``i``-th picture FFmpeg outputs (display order); its time is ``i`` frame durations, as the ffmpeg
CLI assigns them. Oracles: the CLI's pixels (``-vf format=rgb24``) and its frame times (``showinfo``).
"""

from __future__ import annotations

import re
import subprocess

import av
import numpy as np
import pytest
import torch
from media import _frame_image
from oracle import cli_rgb_frames, ffmpeg_cli

from gpudecode import MediaError, VideoDecoder, samplers

N = 30


def _make_raw(path, codec: str, fmt: str, fps: int) -> str:
    c = av.open(str(path), "w", format=fmt)
    s = c.add_stream(codec, rate=fps)
    s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
    s.options = (
        {"x265-params": "keyint=10:bframes=2:log-level=none"}
        if codec == "libx265"
        else {"bf": "2", "g": "10", "preset": "veryfast"}
    )
    for i in range(N):
        f = av.VideoFrame.from_ndarray(_frame_image(i, 96, 64), "rgb24").reformat(format="yuv420p")
        f.pts = i
        for pkt in s.encode(f):
            c.mux(pkt)
    for pkt in s.encode():
        c.mux(pkt)
    c.close()
    return str(path)


@pytest.fixture(scope="module", params=[("libx264", "h264", 30), ("libx265", "hevc", 24)], ids=["h264", "hevc"])
def raw(request, tmp_path_factory):
    codec, fmt, fps = request.param
    return _make_raw(tmp_path_factory.mktemp("raw") / f"clip.{fmt}", codec, fmt, fps)


def _cli_times(path: str) -> list[float]:
    err = subprocess.run(
        [ffmpeg_cli(), "-hide_banner", "-nostdin", "-i", path, "-vf", "showinfo", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    return [float(t) for t in re.findall(r"pts_time:([0-9.]+)", err)]


def test_every_frame_in_order_with_the_clis_times(raw):
    ref = cli_rgb_frames(raw)
    times = _cli_times(raw)
    assert len(ref) == len(times) == N
    dec = VideoDecoder(raw, dimension_order="NHWC")
    assert len(dec) == N and dec.metadata.num_frames_from_content == N
    batch = dec.get_frames_in_range(0, N)
    assert np.array_equal(batch.data.numpy(), ref)
    np.testing.assert_allclose(batch.pts_seconds.numpy(), times, atol=1e-6)
    assert dec.metadata.average_fps == pytest.approx(1 / (times[1] - times[0]))


def test_random_access_and_times(raw):
    ref = cli_rgb_frames(raw)
    dec = VideoDecoder(raw, dimension_order="NHWC")
    order = [N - 1, 0, 17, 17, 3, 25]  # backwards requests restart from the first packet
    assert np.array_equal(dec.get_frames_at(order).data.numpy(), ref[order])
    for i in (N - 1, 2, 11):
        assert np.array_equal(dec[i].numpy(), ref[i])
    t = _cli_times(raw)
    frame = dec.get_frame_played_at(t[12] + 0.001)
    assert np.array_equal(frame.data.numpy(), ref[12]) and frame.pts_seconds == pytest.approx(t[12], abs=1e-6)
    assert np.array_equal(np.stack([f.numpy() for f in dec]), ref)
    clips = samplers.clips_at_regular_indices(dec, num_clips=3, num_frames_per_clip=2)
    assert clips.data.shape == (3, 2, 64, 96, 3)


def test_bytes_and_file_objects(raw):
    ref = cli_rgb_frames(raw)
    with open(raw, "rb") as f:
        for source in (open(raw, "rb").read(), f):  # noqa: SIM115
            dec = VideoDecoder(source, dimension_order="NHWC")
            assert torch.equal(dec.get_frames_at([N - 1, 4]).data, torch.from_numpy(ref[[N - 1, 4]].copy()))


def test_approximate_mode_points_at_exact(raw):
    with pytest.raises(MediaError, match=r"Use seek_mode='exact' \(one scan of the packets; raw H\.264/HEVC"):
        VideoDecoder(raw, seek_mode="approximate")


def test_transforms_and_float_output(raw):
    """The raw-stream wrapper shapes frames like the CPU backend it wraps (the CLI's filters, RGB48 / 65535)."""
    from oracle import cli_frames

    from gpudecode.transforms import CenterCrop, Resize

    dec = VideoDecoder(raw, transforms=[Resize((33, 50)), CenterCrop((20, 21))], output_dtype=torch.float32)
    want = cli_frames(raw, "scale=50:33:flags=bilinear,crop=21:20", 21, 20, rgb48=True)
    got = dec.get_frames_at([0, 17, 3]).data.permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(got, want[[0, 17, 3]])
