"""File reads: file objects larger than what FFmpeg reads ahead.

The clips are lossless so that they are far larger than the buffer PyAV reads ahead (32 KiB): FFmpeg reads
from the file after gpudecode's own parsing did. Frames are compared with a plain PyAV decode (``oracle``)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from media import Spec, make_video
from oracle import oracle, to_hwc

from gpudecode import VideoDecoder

N = 48
_LOSSLESS = {"qp": "0", "g": "12", "bf": "2", "preset": "ultrafast"}


def _faststart(src: Path, dst: Path) -> Path:
    """``src`` remuxed with its ``moov`` box before the media data (``-movflags faststart``)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "+faststart"}) as out:
        ins = inp.streams.video[0]
        outs = out.add_stream_from_template(ins)
        for pkt in inp.demux(ins):
            if pkt.dts is not None:
                pkt.stream = outs
                out.mux(pkt)
    return dst


@pytest.fixture(scope="module", params=["mp4", "mp4_faststart", "matroska"])
def clip(request, tmp_path_factory) -> Path:
    """A 160x120 lossless H.264 clip of 48 frames (~800 KB), keyframes every 12, B-frames; MP4 with its ``moov``
    box at the end (FFmpeg's default) or at the start, or Matroska."""
    folder = tmp_path_factory.mktemp("read_errors")
    container = request.param.removesuffix("_faststart")
    spec = Spec("clip", container=container, width=160, height=120, num_frames=N, options=_LOSSLESS)
    path = make_video(spec, folder / f"clip.{ {'matroska': 'mkv'}.get(container, container) }")
    return _faststart(path, folder / "faststart.mp4") if request.param.endswith("_faststart") else path


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
