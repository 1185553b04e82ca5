"""Child process: swscale's RGB resize writing into (and reading from) scratch frames that end at a guard page.

Usage: ``python guarded_scale.py [--unpadded] [VIDEO...]``. Every scratch frame the converters and scalers
allocate ends exactly where a ``PROT_NONE`` page begins (sentinels before it), so a write or read past the padded
FFmpeg layout is a SIGSEGV; each VIDEO is then decoded with transforms (uint8 and float32) through the same guarded
scratch frames. Prints ``ok`` at the end. ``--unpadded`` lays scratch frames out tightly (rows of exactly ``width``
pixels, no padding): the check must then fail, which shows it can.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import guard
import numpy as np

from gpudecode._backends import _swscale


def _guarded(nbytes: int, align: int = 64) -> np.ndarray:
    return guard.guarded_array(nbytes)


def _decode_with_transforms(path: str) -> None:
    import torch

    from gpudecode import VideoDecoder
    from gpudecode.transforms import CenterCrop, Resize

    for dtype in (torch.uint8, torch.float32):
        chains = [Resize((37, 53))], [CenterCrop((31, 45)), Resize((150, 201))], [Resize((20, 30)), CenterCrop((9, 9))]
        for tr in chains:
            with VideoDecoder(path, transforms=tr, output_dtype=dtype) as dec:
                dec.get_frames_at(list(range(len(dec))))
                guard.check_sentinels()


def main(unpadded: bool, paths: list[str]) -> None:
    _swscale.aligned_empty = _guarded
    if unpadded:
        _swscale.ffmpeg_linesize = lambda width, itemsize=1: width * 3 * itemsize
        _swscale._PAD_ROWS, _swscale._PAD_BYTES = 1, 0
    scaler = _swscale.rgb_scaler()
    assert scaler is not None
    rng = np.random.default_rng(0)
    sizes = [(1, 1), (2, 3), (7, 5), (31, 17), (49, 65), (64, 96), (112, 200), (240, 426), (360, 640), (97, 129)]
    for dtype in (np.uint8, np.uint16):
        for sh, sw in sizes:
            src_frame = _swscale.ScratchFrame()  # the source: an FFmpeg-layout frame, as the converter writes
            src = src_frame.frame(sw, sh, dtype)
            src[...] = rng.integers(0, np.iinfo(dtype).max, src.shape, dtype=dtype)
            for dh, dw in sizes:
                out = scaler.scale(src, dh, dw)
                assert out is not None and out.shape == (dh, dw, 3)
                guard.check_sentinels()
            # a crop's view (reads end inside the frame's padding) and the bottom-right corner
            if sh > 2 and sw > 2:
                assert scaler.scale(src[1:, 1:], 5, 9) is not None
                assert scaler.scale(src[sh - 2 :, sw - 2 :], 3, 3) is not None
    for path in paths:
        _decode_with_transforms(path)
    print("ok", guard.allocations, flush=True)


if __name__ == "__main__":
    main("--unpadded" in sys.argv[1:], [a for a in sys.argv[1:] if not a.startswith("--")])
