"""Child process: decode clips by every access path with output tensors that end at a guard page.

Usage: ``python guarded_decode.py PATH...``. Prints ``ok NAME`` after each clip; an overrun kills the process with
SIGSEGV (the parent sees the last clip started), an underrun raises from ``check_sentinels``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import guard

guard.install()

from gpudecode import VideoDecoder, samplers  # noqa: E402


def _decode_every_way(path: str, mode: str) -> None:
    with VideoDecoder(path, seek_mode=mode) as dec:
        n = len(dec)
        for i in range(n):  # one single-frame output tensor per call: every frame is the last in its buffer
            dec.get_frame_at(i)
        dec[n - 1]
        dec.get_frames_at([*list(range(n - 1, -1, -1)), 0])
        dec.get_frames_in_range(0, n)
        dec.get_frames_played_at([dec.metadata.begin_stream_seconds])
        samplers.clips_at_regular_indices(dec, num_clips=2, num_frames_per_clip=2)
        for _ in dec:
            pass
    with VideoDecoder(path, seek_mode=mode, num_threads=2) as dec:
        dec.get_frames_at(list(range(len(dec))))


def _dataloader_workers(paths: list[str]) -> None:
    """Forked DataLoader workers inherit the guarded allocator: clips decoded there end at guard pages too."""
    import torch

    from gpudecode.data import ClipDataset, collate_clips

    ds = ClipDataset(
        paths,
        sampler=samplers.clips_at_regular_indices,
        mixed_sizes=True,
        sampler_kwargs={"num_clips": 2, "num_frames_per_clip": 2},
    )
    loader = torch.utils.data.DataLoader(
        ds, batch_size=2, num_workers=2, multiprocessing_context="fork", collate_fn=collate_clips
    )
    assert sum(len(b["frames"]) for b in loader) == len(paths)


def main(paths: list[str]) -> None:
    for path in paths:
        print("start", Path(path).name, flush=True)
        for mode in ("exact", "approximate"):
            _decode_every_way(path, mode)
            guard.check_sentinels()
        print("ok", Path(path).name, flush=True)
    print("start dataloader workers", flush=True)
    _dataloader_workers(paths[:6])
    assert guard.allocations > 0, "no output tensor went through the guard allocator"
    print("guarded allocations", guard.allocations, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
