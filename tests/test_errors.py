"""Errors: gpudecode's classes (which also inherit the matching builtin), clear messages, nothing lost."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from media import FASTSTART, remux
from oracle import oracle

from gpudecode import (
    CudaUnavailableError,
    DecodeError,
    FrameIndexError,
    GpudecodeError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    MediaError,
    SourceNotFoundError,
    VideoDecoder,
    WorkerCrashError,
)


def test_hierarchy():
    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(MediaError, ValueError)
    assert issubclass(FrameIndexError, IndexError)
    assert issubclass(SourceNotFoundError, FileNotFoundError)
    assert issubclass(DecodeError, RuntimeError)
    assert issubclass(CudaUnavailableError, RuntimeError)
    assert issubclass(WorkerCrashError, RuntimeError)
    for cls in (
        InvalidArgumentError,
        MediaError,
        FrameIndexError,
        SourceNotFoundError,
        DecodeError,
        CudaUnavailableError,
        WorkerCrashError,
    ):
        assert issubclass(cls, GpudecodeError)


def test_missing_path(tmp_path):
    with pytest.raises(SourceNotFoundError, match="No such file"):
        VideoDecoder(tmp_path / "nope.mp4")
    with pytest.raises(FileNotFoundError, match="No such file"):
        VideoDecoder(str(tmp_path / "nope.mp4"))


def test_directory(tmp_path):
    with pytest.raises(InvalidArgumentError, match="directory"):
        VideoDecoder(tmp_path)


@pytest.mark.parametrize(
    "data",
    [
        b"hello world, not a video" * 10,
        bytes(range(256)) * 50,
        np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
    ],
)
def test_not_media(data, tmp_path):
    with pytest.raises(MediaError, match="Could not open"):
        VideoDecoder(data)
    p = tmp_path / "x.mp4"
    p.write_bytes(data)
    with pytest.raises(ValueError, match="Could not open"):
        VideoDecoder(p)


def test_no_video_stream(audio_only):
    with pytest.raises(MediaError, match="no video stream"):
        VideoDecoder(audio_only)


def test_constructor_counts_accept_what_every_entry_point_accepts(video):
    """One argument checker: NumPy and 0-d tensor integers work for num_threads / stream_index as for indices and
    sampler counts; bools and floats are refused with the one template (a TypeError too)."""
    path = video("h264_bframes")
    ref = VideoDecoder(path, num_threads=1, stream_index=0)
    for value in (np.int64(1), torch.tensor(1), np.uint8(1)):
        dec = VideoDecoder(path, num_threads=value, stream_index=value - 1, num_ffmpeg_threads=value)
        assert torch.equal(dec[3], ref[3]) and dec.stream_index == 0
    for bad in (True, 1.0, "1"):
        with pytest.raises(InvalidArgumentTypeError, match=r"Invalid num_threads \(.+\)\. Supported values are: "):
            VideoDecoder(path, num_threads=bad)
    with pytest.raises(
        InvalidArgumentError, match=r"Invalid stream_index \(-1\)\. Supported values are: integers >= 0"
    ):
        VideoDecoder(path, stream_index=-1)


def test_stream_index(video):
    path = video("with_audio")
    assert VideoDecoder(path, stream_index=1).metadata.stream_index == 1
    with pytest.raises(InvalidArgumentError, match=r"Invalid stream_index \(0\) is a audio stream"):
        VideoDecoder(path, stream_index=0)
    with pytest.raises(InvalidArgumentError, match=r"Invalid stream_index \(7\)"):
        VideoDecoder(path, stream_index=7)
    with pytest.raises(InvalidArgumentError, match=r"Invalid stream_index \('1'\)"):
        VideoDecoder(path, stream_index="1")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"seek_mode": "fast"}, r"Invalid seek_mode \('fast'\)\. Supported values are: exact, approximate\."),
        ({"dimension_order": "CHW"}, r"Invalid dimension_order \('CHW'\)\. Supported values are: NCHW, NHWC\."),
        ({"device": "tpu"}, r"Invalid device \('tpu'\)"),
        ({"device": "mps"}, r"Invalid device \('mps'\)"),
        ({"device": 3.5}, r"Invalid device"),
        ({"num_threads": -1}, r"Invalid num_threads \(-1\)"),
        ({"num_threads": "2"}, r"Invalid num_threads"),
    ],
)
def test_invalid_arguments(video, kwargs, pattern):
    with pytest.raises(InvalidArgumentError, match=pattern):
        VideoDecoder(video("h264_bframes"), **kwargs)


@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_index_errors(video, mode):
    dec = VideoDecoder(video("h264_bframes"), seek_mode=mode)
    for bad in (40, -41, 10**9):
        with pytest.raises(FrameIndexError, match=rf"Invalid frame index \({bad}\)\. The video has 40 frames"):
            dec[bad]
        with pytest.raises(IndexError, match=r"supported indices are -40\.\.39"):
            dec.get_frames_at([0, bad])
    with pytest.raises(InvalidArgumentError, match="Supported values are: integers"):
        dec.get_frame_at(1.5)
    with pytest.raises(InvalidArgumentError, match="Supported values are: integers"):
        dec.get_frames_at([1, 2.0])
    with pytest.raises(InvalidArgumentError, match="sequence of integers"):
        dec.get_frames_at(3)
    # start/stop follow slicing, as in torchcodec: past the end is clamped, not an error
    assert len(dec.get_frames_in_range(40, 41)) == 0
    assert dec.get_frames_in_range(0, 41).pts_seconds.tolist() == dec.get_frames_in_range(0, 40).pts_seconds.tolist()
    assert len(dec.get_frames_in_range(-100, 3)) == 3
    with pytest.raises(FrameIndexError, match=r"Invalid frame index \(1180591620717411303424\)"):
        dec.get_frame_at(2**70)  # never an OverflowError
    with pytest.raises(FrameIndexError, match=r"Invalid frame index \(1180591620717411303424\)"):
        dec.get_frames_at([0, 2**70])
    with pytest.raises(InvalidArgumentError, match=r"Invalid step \(0\)"):
        dec.get_frames_in_range(0, 5, 0)
    with pytest.raises(InvalidArgumentError, match=r"stop .* is before start"):
        dec.get_frames_in_range(5, 2)


@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_time_errors(video, mode):
    dec = VideoDecoder(video("nonzero_start"), seek_mode=mode)
    m = dec.metadata
    for bad in (m.begin_stream_seconds - 0.01, m.end_stream_seconds, m.end_stream_seconds + 5, -1.0):
        with pytest.raises(InvalidArgumentError, match=r"Supported values are in \["):
            dec.get_frame_played_at(bad)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(InvalidArgumentError, match="finite numbers of seconds"):
            dec.get_frame_played_at(bad)
        with pytest.raises(ValueError, match="finite numbers of seconds"):
            dec.get_frames_played_at([m.begin_stream_seconds, bad])
    with pytest.raises(InvalidArgumentError, match="finite numbers of seconds"):
        dec.get_frame_played_at("1.0")
    with pytest.raises(InvalidArgumentError, match=r"stop_seconds .* is before start_seconds"):
        dec.get_frames_played_in_range(m.begin_stream_seconds + 0.5, m.begin_stream_seconds + 0.1)
    with pytest.raises(InvalidArgumentError, match="Invalid stop_seconds"):
        dec.get_frames_played_in_range(m.begin_stream_seconds, m.end_stream_seconds + 1)


def test_cuda_without_gpu_is_a_clear_error(video):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(CudaUnavailableError, match="Cannot return frames on cuda:0: NVDEC is unavailable"):
        VideoDecoder(video("h264_bframes"), device="cuda")


def test_cuda_in_a_bad_fork_is_a_clear_error(video, monkeypatch):
    """A child forked after its parent initialized CUDA can use no CUDA at all: say so, and what to do instead."""
    import torch

    monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: True)
    with pytest.raises(CudaUnavailableError, match=r"forked after its parent initialized CUDA.*'spawn'"):
        VideoDecoder(video("h264_bframes"), device="cuda")
    assert len(VideoDecoder(video("h264_bframes"), device="cpu")[:]) > 0  # the CPU path is unaffected


@pytest.mark.parametrize("fps", [0, -1, math.nan, math.inf, True, "10"])
def test_invalid_fps(video, fps):
    dec = VideoDecoder(video("h264_bframes"))
    with pytest.raises(InvalidArgumentError, match=r"Invalid fps .*Supported values are: finite numbers > 0"):
        dec.get_frames_played_in_range(0.0, 1.0, fps=fps)
    with pytest.raises(InvalidArgumentError, match="Invalid fps"):
        dec.get_all_frames(fps=fps)


def test_torchcodec_constructor_arguments(video):
    import torch

    path = video("h264_bframes")
    assert len(VideoDecoder(path, num_ffmpeg_threads=1, transforms=[], output_dtype=torch.uint8)[:3]) == 3
    assert len(VideoDecoder(path, num_ffmpeg_threads=2, num_threads=2)) > 0
    with pytest.raises(InvalidArgumentError, match="same setting; pass one of them"):
        VideoDecoder(path, num_ffmpeg_threads=1, num_threads=4)
    with pytest.raises(InvalidArgumentError, match="Unsupported transform: Identity"):
        VideoDecoder(path, transforms=[torch.nn.Identity()])
    with pytest.raises(InvalidArgumentError, match=r"Supported values are: torch\.uint8, torch\.float32, 'auto'"):
        VideoDecoder(path, output_dtype=torch.float16)
    with pytest.raises(InvalidArgumentError, match=r"custom_frame_mappings.*index="):
        VideoDecoder(path, custom_frame_mappings="{}")


def test_closed_decoder(video):
    dec = VideoDecoder(video("h264_bframes"))
    with dec:
        dec[0]
    with pytest.raises(InvalidArgumentError, match="closed VideoDecoder"):
        dec[0]
    dec.close()  # idempotent


# -- damaged data ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [0.35, 0.6, 0.9])
@pytest.mark.parametrize("kind", ["mp4", "mkv"])
def test_truncated_file_decodes_frames_before_the_damage(video, tmp_path, keep, kind):
    src = remux(video("h264_bframes"), tmp_path / "fs.mp4", options=FASTSTART) if kind == "mp4" else video("h264_mkv")
    frames, _, _ = oracle(str(src))
    data = src.read_bytes()
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(data[: int(len(data) * keep)])
    dec = VideoDecoder(cut, dimension_order="NHWC")
    n = len(dec)
    assert 0 < n <= len(frames)
    # Frames well before the cut decode exactly as from the intact file.
    safe = max(1, n - 16)
    got = dec.get_frames_at(list(range(safe)))
    for i in range(safe):
        np.testing.assert_array_equal(got.data[i].numpy(), frames[i].rgb)
    # Asking for the damaged tail raises a clear error or returns what FFmpeg conceals; the decoder stays usable.
    try:
        dec.get_frames_at(list(range(n)))
    except DecodeError as exc:
        assert "damaged or missing" in str(exc)
    np.testing.assert_array_equal(dec[0].numpy(), frames[0].rgb)


def test_mp4_without_index_is_a_media_error(video, tmp_path):
    data = video("h264_bframes").read_bytes()  # moov at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"Could not open|no packets|no decodable"):
        VideoDecoder(cut)


def test_zeroed_bytes_in_the_middle(video, tmp_path):
    src = video("h264_mkv")
    frames, _, _ = oracle(str(src))
    data = bytearray(src.read_bytes())
    mid = len(data) * 2 // 3
    data[mid : mid + 400] = bytes(400)
    bad = tmp_path / "z.mkv"
    bad.write_bytes(bytes(data))
    dec = VideoDecoder(bad, dimension_order="NHWC")
    for i in range(5):
        np.testing.assert_array_equal(dec[i].numpy(), frames[i].rgb)
    try:
        dec.get_frames_at(list(range(len(dec))))
    except DecodeError as exc:
        assert "damaged" in str(exc)
    np.testing.assert_array_equal(dec[1].numpy(), frames[1].rgb)


def test_image_files_are_one_frame_videos_or_clear_errors(tmp_path):
    """Uploads that are images: FFmpeg reads PNG/JPEG as a one-frame stream; anything else is a MediaError."""
    import av as _av

    img = np.zeros((16, 24, 3), np.uint8)
    img[:, :12] = 200
    cc = _av.CodecContext.create("png", "w")
    cc.width, cc.height, cc.pix_fmt = 24, 16, "rgb24"
    png = b"".join(bytes(p) for p in [*cc.encode(_av.VideoFrame.from_ndarray(img, format="rgb24")), *cc.encode(None)])
    (tmp_path / "x.png").write_bytes(png)
    try:
        dec = VideoDecoder(tmp_path / "x.png")
    except MediaError:
        return
    assert len(dec) == 1
    assert np.array_equal(dec[0].permute(1, 2, 0).numpy(), img)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/clip.mp4", "https://example.invalid/v.mkv", "rtsp://cam/1"])
def test_urls_get_a_clear_error(url):
    with pytest.raises(InvalidArgumentError, match=r"URLs are not supported\. Download the file first"):
        VideoDecoder(url)


def test_an_allocation_that_cannot_succeed_is_a_clear_error():
    """Found by the fuzzer (seed 32, ``flip@12450+4096,dup@12337+4096``): every frame of a damaged stream whose
    header claims a huge frame count asked torch for 961 GB and leaked torch's RuntimeError."""
    import torch

    from gpudecode import AllocationError
    from gpudecode._memory import new_frames

    with pytest.raises(AllocationError, match=r"Cannot allocate 6220\.8 GB for 1000000 frames of 1920x1080") as info:
        new_frames((1_000_000, 1080, 1920, 3), torch.device("cpu"))
    assert isinstance(info.value, MemoryError) and isinstance(info.value, RuntimeError)


@pytest.mark.parametrize("step", [1, 3])
def test_a_sequence_that_ends_early_names_the_frames_it_lost(video, step):
    """Approximate mode decodes a range as one run of decoder outputs. Where that run ends early (nothing
    decodable was left), the DecodeError names the lost frames by their indices in the video, not by output slot."""
    dec = VideoDecoder(video("h264_mkv"), seek_mode="approximate")
    dec.get_frame_at(0)  # opens the pipeline
    planner = dec._session.pipe.planner
    real = planner.run_sequence

    def two_then_nothing(target, count, step_, emit, owner=None):
        real(target, 2, step_, emit, owner)
        return 2

    planner.run_sequence = two_then_nothing
    lost = list(range(5, 30, step))[2:]
    want = f"Could not decode frame(s) {lost[:10]}{' ...' if len(lost) > 10 else ''}: the data is damaged or missing."
    with pytest.raises(DecodeError, match=re.escape(want)):
        dec.get_frames_in_range(5, 30, step)


class _FailingReader(io.BytesIO):
    """A file object whose reads past ``fail_after`` bytes raise OSError once armed (a disk or network that goes)."""

    armed = False
    fail_after = 8000

    def read(self, n: int = -1) -> bytes:
        if self.armed and self.tell() > self.fail_after:
            raise OSError("the disk went away")
        return super().read(n)


def test_a_read_error_while_demuxing_ends_the_stream_with_a_warning(video, caplog):
    """Demuxing that stops at an I/O error ends the packets there with the reason logged, instead of raising out of
    the decode; the frames already read come back (here all of them: FFmpeg had buffered the rest)."""
    data = Path(video("h264_mkv")).read_bytes()
    want = VideoDecoder(data)[:]
    reader = _FailingReader(data)
    dec = VideoDecoder(reader)
    reader.armed = True
    with caplog.at_level("WARNING", logger="gpudecode"):
        got = dec.get_frames_in_range(0, len(dec)).data
    assert [r.getMessage() for r in caplog.records] == [
        "gpudecode: demuxing stopped at damaged data: the disk went away"
    ]
    torch.testing.assert_close(got, want, rtol=0, atol=0)
