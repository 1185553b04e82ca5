"""Every frame size: bit-exact with the ffmpeg CLI and no write outside the output tensor (issue 10).

The clips (``sizes.py``) span YouTube's ladder, phone portraits, widths that are not a multiple of 16 or 64, odd
sizes and each encoder's smallest size, in H.264, HEVC (8/10/12-bit), VP8, VP9, AV1 (8/10-bit), MPEG-4 and
MPEG-2, limited and full range. The oracle is the ffmpeg command-line tool itself (``-vf format=rgb24``), run as a
separate process; the memory check decodes the same clips in a child whose output tensors end at a guard page.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from oracle import cli_rgb_frames
from sizes import SIZE_SPECS

from gpudecode import VideoDecoder, samplers

NAMES = sorted(SIZE_SPECS)


def _assert_same(name: str, got: np.ndarray, ref: np.ndarray, indices: list[int]) -> None:
    assert got.shape == (len(indices), *ref.shape[1:]), (got.shape, ref.shape)
    for k, i in enumerate(indices):
        if not np.array_equal(got[k], ref[i]):
            d = np.abs(got[k].astype(int) - ref[i].astype(int))
            cols = np.nonzero(d.max(axis=(0, 2)))[0]
            raise AssertionError(
                f"{name} frame {i}: {int((d > 0).sum())} values differ (max {d.max()}), "
                f"columns {cols.min()}..{cols.max()}"
            )


@pytest.mark.parametrize("mode", ["exact", "approximate"])
@pytest.mark.parametrize("name", NAMES)
def test_every_access_path_is_bit_exact_with_the_cli(video, name, mode):
    path = str(video(name))
    ref = cli_rgb_frames(path)
    n = len(ref)
    spec = SIZE_SPECS[name]
    assert ref.shape[1:3] == (spec.height, spec.width)
    with VideoDecoder(path, seek_mode=mode, dimension_order="NHWC") as dec:
        assert len(dec) == n
        assert (dec.metadata.width, dec.metadata.height) == (spec.width, spec.height)
        for i in range(n):
            _assert_same(name, dec.get_frame_at(i).data.numpy()[None], ref, [i])
        _assert_same(name, dec[n - 1].numpy()[None], ref, [n - 1])
        order = [n - 1, 0, n // 2, 0, n - 2]
        _assert_same(name, dec.get_frames_at(order).data.numpy(), ref, order)
        _assert_same(name, dec.get_frames_in_range(0, n).data.numpy(), ref, list(range(n)))
        pts = dec.get_frames_in_range(0, n).pts_seconds.tolist()
        _assert_same(name, dec.get_frames_played_at(pts[::-1]).data.numpy(), ref, list(range(n))[::-1])
        clips = samplers.clips_at_regular_indices(dec, num_clips=2, num_frames_per_clip=2)
        starts = [0, n - 2]
        for c in range(2):
            _assert_same(name, clips.data[c].numpy(), ref, [starts[c], starts[c] + 1])
        _assert_same(name, np.stack([f.numpy() for f in dec]), ref, list(range(n)))
    with VideoDecoder(path, seek_mode=mode, dimension_order="NHWC", num_threads=2) as dec:
        _assert_same(name, dec.get_frames_at(list(range(n))).data.numpy(), ref, list(range(n)))


def test_nchw_output_is_the_same_pixels(video):
    path = str(video("h264_854x480"))
    ref = cli_rgb_frames(path)
    got = VideoDecoder(path).get_frames_in_range(0, len(ref)).data.permute(0, 2, 3, 1).numpy()
    _assert_same("h264_854x480", got, ref, list(range(len(ref))))


def test_no_write_outside_the_output_tensor(video):
    """Decode every clip by every access path with output tensors that end at a PROT_NONE page (child process),
    then a few of them in forked DataLoader workers (which inherit the guarded allocator).

    Before the fix (swscale writing FFmpeg-sized vector blocks into tightly packed tensors) the child died with
    SIGSEGV on the first clip whose width is not a multiple of 16 (``h264_200x112``, frame 0).
    """
    paths = [str(video(n)) for n in NAMES]
    paths += [str(video(n)) for n in ("rotated90", "editlist", "hevc10", "full_range", "odd_size", "mpeg4_avi")]
    child = Path(__file__).parent / "guarded_decode.py"
    r = subprocess.run([sys.executable, str(child), *paths], capture_output=True, text=True, timeout=600)
    started = [ln.split(" ", 1)[1] for ln in r.stdout.splitlines() if ln.startswith("start ")]
    assert r.returncode == 0, (
        f"child exited {r.returncode} while decoding {started[-1] if started else '?'}:\n{r.stderr[-2000:]}"
    )
    assert sum(ln.startswith("ok ") for ln in r.stdout.splitlines()) == len(paths)
