"""Record what torchcodec's samplers return for a grid of arguments, as an oracle for ``test_samplers_vs_torchcodec``.

Run by hand where torchcodec is installed (it needs FFmpeg libraries and a matching torch build), from the repository
root: ``python tests/record_torchcodec_samplers.py``. Writes ``tests/torchcodec_samplers.json``: the grid of
(sampler, arguments), and per fixture and case either the frame index of every frame returned (global RNG seeded with
7 before the call; time arguments relative to the stream's start) or the builtin exception class torchcodec raised.
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from media import SPECS, make_video

FIXTURES = ("h264_bframes", "vfr", "nonzero_start")
SEED = 7


def cases() -> list[tuple[str, dict]]:
    """The argument grid (about 400 calls per fixture)."""
    out: list[tuple[str, dict]] = []
    for nc, pc, step, start, end, pol in itertools.product(
        (1, 3), (1, 4), (1, 3), (0, -10), (None, 30, -2, 10**6), ("repeat_last", "wrap", "error")
    ):
        kw = dict(
            num_clips=nc,
            num_frames_per_clip=pc,
            num_indices_between_frames=step,
            sampling_range_start=start,
            sampling_range_end=end,
            policy=pol,
        )
        out += [("clips_at_random_indices", kw), ("clips_at_regular_indices", kw)]
    for nc, pc, sbf, start, end, pol in itertools.product(
        (1, 4), (1, 3), (None, 0.1), (None, 0.2), (None, 100.0), ("repeat_last", "wrap", "error")
    ):
        out.append(
            (
                "clips_at_random_timestamps",
                dict(
                    num_clips=nc,
                    num_frames_per_clip=pc,
                    seconds_between_frames=sbf,
                    sampling_range_start=start,
                    sampling_range_end=end,
                    policy=pol,
                ),
            )
        )
    for gap, pc, sbf in itertools.product((0.3, 0.55), (1, 2, 5), (None, 0.25)):
        out.append(
            (
                "clips_at_regular_timestamps",
                dict(seconds_between_clip_starts=gap, num_frames_per_clip=pc, seconds_between_frames=sbf),
            )
        )
    return out


def relative(kw: dict, begin: float) -> dict:
    """Time arguments are given relative to the stream's start (fixtures start at 0 or 2.4 s)."""
    return {k: (v + begin if k.startswith("sampling_range") and isinstance(v, float) else v) for k, v in kw.items()}


def main() -> None:
    import torchcodec
    import torchcodec.decoders as tcd
    import torchcodec.samplers as tcs

    media = Path(tempfile.mkdtemp())
    grid = cases()
    results: dict[str, list] = {}
    for name in FIXTURES:
        spec = SPECS[name]
        ext = {"matroska": "mkv", "webm": "webm"}.get(spec.container, spec.container)
        dec = tcd.VideoDecoder(str(make_video(spec, media / f"{name}.{ext}")))
        begin = dec.metadata.begin_stream_seconds
        frame_pts = dec.get_frames_in_range(0, len(dec)).pts_seconds.double()
        results[name] = []
        for fn, kw in grid:
            torch.manual_seed(SEED)
            try:
                b = getattr(tcs, fn)(dec, **relative(kw, begin))
            except Exception as exc:  # recording what torchcodec raises is the point
                results[name].append(next(c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins"))
                continue
            pts = b.pts_seconds.double().reshape(-1, 1)
            idx = (pts - frame_pts.reshape(1, -1)).abs().argmin(dim=1)  # which frame each one is
            assert torch.allclose(frame_pts[idx], pts.flatten(), atol=1e-6)
            results[name].append(idx.reshape(b.pts_seconds.shape).tolist())
    out = Path(__file__).resolve().parent / "torchcodec_samplers.json"
    out.write_text(
        json.dumps(
            {
                "torchcodec": torchcodec.__version__,
                "torch": torch.__version__,
                "seed": SEED,
                "cases": grid,
                "frames": results,
            },
            separators=(",", ":"),
        )
        + "\n"
    )
    print(f"{len(grid)} cases x {len(FIXTURES)} fixtures -> {out}")


if __name__ == "__main__":
    main()
