"""File reads: file objects larger than what FFmpeg reads ahead, and a source that stops being readable after the
decoder opened it (a disk that goes, a file deleted, a network file object that fails).

Every access call on a source gone unreadable raises gpudecode's DecodeError naming the frames it lost (never a bare
OSError, never "could not open as media" for a file that opened fine, never the last frame repeated in place of lost
ones), frames read before the failure still come back, and the same decoder decodes again once the source reads again.

The clips are lossless so that they are far larger than the buffer PyAV reads ahead (32 KiB): the frames after the
failure really are unread. Frames are compared with a plain PyAV decode (``oracle``)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from media import FASTSTART, Spec, make_video, remux
from oracle import oracle, to_hwc

from gpudecode import DecodeError, VideoDecoder

N = 48
_LOSSLESS = {"qp": "0", "g": "12", "bf": "2", "preset": "ultrafast"}


@pytest.fixture(scope="module", params=["mp4", "mp4_faststart", "matroska"])
def clip(request, tmp_path_factory) -> Path:
    """A 160x120 lossless H.264 clip of 48 frames (~800 KB), keyframes every 12, B-frames; MP4 with its ``moov``
    box at the end (FFmpeg's default) or at the start, or Matroska."""
    folder = tmp_path_factory.mktemp("read_errors")
    container = request.param.removesuffix("_faststart")
    spec = Spec("clip", container=container, width=160, height=120, num_frames=N, options=_LOSSLESS)
    path = make_video(spec, folder / f"clip.{ {'matroska': 'mkv'}.get(container, container) }")
    return remux(path, folder / "faststart.mp4", options=FASTSTART) if request.param.endswith("_faststart") else path


@pytest.mark.parametrize("seek_mode", ["exact", "approximate"])
def test_a_file_object_larger_than_ffmpegs_buffer_decodes_every_frame(clip, seek_mode):
    """gpudecode's own MP4 parsing and each FFmpeg container read the user's file object through views with their
    own positions. When they shared the file's position, FFmpeg's next read came from wherever the parser left it:
    an MP4 with its ``moov`` at the end lost every frame after the first in exact mode. (The fixtures of other tests
    fit in the 32 KiB FFmpeg reads ahead, so nothing was read after the parser moved the position.)"""
    frames, _, _ = oracle(str(clip))
    with open(clip, "rb") as f:
        dec = VideoDecoder(f, seek_mode=seek_mode)
        assert np.array_equal(to_hwc(dec.get_frame_at(0).data, "NCHW"), frames[0].rgb)
        got = dec.get_frames_in_range(0, N)
        back = dec.get_frame_at(5)
    assert len(got) == N
    for i, f in enumerate(got):
        assert np.array_equal(to_hwc(f.data, "NCHW"), frames[i].rgb), i
    assert np.array_equal(to_hwc(back.data, "NCHW"), frames[5].rgb)


class _SeekSaysNothing(io.BytesIO):
    """A wrapper whose ``seek`` returns nothing (its ``tell`` still works)."""

    def seek(self, offset: int, whence: int = 0) -> None:  # type: ignore[override]
        super().seek(offset, whence)


class _SeekSaysText(io.BytesIO):
    def seek(self, offset: int, whence: int = 0) -> str:  # type: ignore[override]
        super().seek(offset, whence)
        return "somewhere"


@pytest.mark.parametrize("kind", [_SeekSaysNothing, _SeekSaysText])
@pytest.mark.parametrize("seek_mode", ["exact", "approximate"])
def test_a_file_object_whose_seek_returns_no_position_decodes_every_frame(clip, seek_mode, kind):
    """Positions come from the views' own bookkeeping and sizes from ``tell`` where ``seek`` says nothing. Before,
    such an object gave a bare TypeError, or (seek returning None) the wrong frames in approximate mode."""
    frames, _, _ = oracle(str(clip))
    got = VideoDecoder(kind(clip.read_bytes()), seek_mode=seek_mode)[:]
    assert got.shape[0] == N
    for i in range(N):
        assert np.array_equal(to_hwc(got[i], "NCHW"), frames[i].rgb), i


class Disk(io.BytesIO):
    """A file object whose reads past byte ``fail_from`` raise OSError while ``gone`` (the disk went away); with
    ``spreads``, every read fails after the first that reaches that byte from before it (reading on through the
    media data; a Matroska seek's read of the cues at the end does not spread it)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.gone = False
        self.fail_from = 0
        self.spreads = False

    def read(self, n: int | None = -1) -> bytes:
        if self.gone and self.tell() + max(n or 0, 1) > self.fail_from:
            if self.spreads and self.tell() < self.fail_from:
                self.fail_from = 0
            raise OSError("the disk went away")
        return super().read(n)

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def, override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def _lost(exc: DecodeError) -> list[int]:
    """The frame indices a DecodeError names (its first ten)."""
    m = re.search(r"Could not decode frame\(s\) \[([0-9, ]*)\]", str(exc))
    assert m is not None, str(exc)
    return [int(x) for x in m.group(1).split(", ")]


def _calls(dec: VideoDecoder) -> dict:
    last = len(dec) - 1
    return {
        "get_frames_in_range": lambda: dec.get_frames_in_range(0, N),
        "get_frame_at": lambda: dec.get_frame_at(last),
        "iteration": lambda: list(dec),
        "get_frame_played_at": lambda: dec.get_frame_played_at(1.0),
        "get_frames_at": lambda: dec.get_frames_at([3, 30, last]),
    }


@pytest.mark.parametrize("seek_mode", ["exact", "approximate"])
@pytest.mark.parametrize(
    "call", ["get_frames_in_range", "get_frame_at", "iteration", "get_frame_played_at", "get_frames_at"]
)
def test_every_call_on_a_source_gone_after_open_raises_a_decode_error(clip, seek_mode, call, caplog):
    """All reads fail from the moment the decoder is made: each call names lost frames, then works again."""
    frames, _, _ = oracle(str(clip))
    disk = Disk(clip.read_bytes())
    dec = VideoDecoder(disk, seek_mode=seek_mode)
    assert len(dec) == N
    disk.gone = True
    with pytest.raises(DecodeError, match=r"Could not decode frame\(s\) \[") as err:
        _calls(dec)[call]()
    lost = _lost(err.value)
    assert all(0 <= i < N for i in lost)
    if call in ("get_frame_at", "get_frame_played_at"):
        assert lost == [N - 1 if call == "get_frame_at" else 25]
    assert any("the disk went away" in r.getMessage() for r in caplog.records)
    disk.gone = False  # the disk is back: the same decoder reads again, from the start where it has to
    out = _calls(dec)[call]()
    got = [out] if call in ("get_frame_at", "get_frame_played_at") else list(out)
    want = {"get_frame_at": [N - 1], "get_frame_played_at": [25], "get_frames_at": [3, 30, N - 1]}.get(call, range(N))
    assert len(got) == len(want)
    for i, f in zip(want, got, strict=True):
        assert np.array_equal(to_hwc(f.data, "NCHW"), frames[i].rgb), (call, i)


@pytest.mark.parametrize("spreads", [False, True])
@pytest.mark.parametrize("seek_mode", ["exact", "approximate"])
def test_frames_before_the_failure_come_back_and_those_after_are_named(clip, seek_mode, spreads):
    """Reads fail from the middle of the file on: the frames stored before come back exactly; a range across the
    failure names its lost frames and repeats no frame in their place. Where the failure spreads to every read, the
    one-thread rerun of the frames lost (see ``DecodeSession``) reads nothing, and the first run's frames stay."""
    frames, _, _ = oracle(str(clip))
    data = clip.read_bytes()
    disk = Disk(data)
    dec = VideoDecoder(disk, seek_mode=seek_mode, num_threads=2)
    disk.fail_from = len(data) // 2
    disk.gone = True
    disk.spreads = spreads
    first = dec.get_frame_at(0)
    assert np.array_equal(to_hwc(first.data, "NCHW"), frames[0].rgb)
    with pytest.raises(DecodeError, match=r"Other frames remain available") as err:
        dec.get_frames_in_range(0, N)
    lost = _lost(err.value)
    assert lost == sorted(lost) and lost[0] >= N // 4 and lost[-1] < N
    with pytest.raises(DecodeError, match=rf"Could not decode frame\(s\) \[{N - 1}\]"):
        dec.get_frame_at(N - 1)


def test_a_deleted_file_decodes_on_one_thread_where_workers_cannot_open_it(clip, tmp_path, caplog):
    """Parallel decoding opens the file once per worker; once it is deleted the workers cannot, and the decoder's own
    open container decodes the request alone (with a warning) instead of raising."""
    frames, _, _ = oracle(str(clip))
    path = tmp_path / clip.name
    path.write_bytes(clip.read_bytes())
    dec = VideoDecoder(str(path), num_threads=2)
    path.unlink()
    want = [11, 23, 35, 47]  # four runs of equal cost: two workers would take two each
    with caplog.at_level("WARNING", logger="gpudecode"):
        got = dec.get_frames_at(want)
    assert any("decoding on one thread" in r.getMessage() for r in caplog.records)
    for i, f in zip(want, got, strict=True):
        assert np.array_equal(to_hwc(f.data, "NCHW"), frames[i].rgb), i
