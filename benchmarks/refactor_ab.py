"""Same frames, same speed: one workload run by two checkouts of gpudecode, side by side (issue 12's redesign).

The workload opens each clip in both seek modes and does what users do: read the metadata, iterate every frame in
chunks, ask for scattered frames and times, and sample clips. It prints a digest of every returned tensor, pts and
duration, and of the work each call did (seeks, packets fed, frames decoded and converted), so the two checkouts
must agree bit for bit and decode for decode, then the time. Run it by hand:

    python benchmarks/refactor_ab.py --before <commit>      # a scratch copy of <commit> (git archive)
    # writes benchmarks/results/refactor_ab.{json,md}

Each checkout runs in its own process (``PYTHONPATH`` puts it first), one decode thread; the pairs alternate which
runs first (A B, B A, ...) and the ratio is taken pair by pair.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save, tree_at

ROOT = Path(__file__).resolve().parent.parent
CLIPS = ["seed_short.mp4", "layout_h264_640x360.mp4", "layout_hevc10_1280x720.mp4", "overhead_h264_320x240.mp4"]


def workload(media: Path) -> dict[str, object]:
    """Run the workload with whichever gpudecode is first on the path; return digests and seconds."""
    import numpy as np
    import torch

    from gpudecode import VideoDecoder, samplers

    h = hashlib.sha256()

    def eat(batch: object) -> None:
        for name in ("data", "pts_seconds", "duration_seconds"):
            h.update(getattr(batch, name).contiguous().numpy().tobytes())
        s = dec.stats  # the work done: seeks, packets fed, frames decoded and converted
        h.update(repr((s.seeks, s.packets_fed, s.frames_decoded, s.frames_converted)).encode())

    t0 = time.perf_counter()
    for clip in CLIPS:
        for mode in ("exact", "approximate"):
            dec = VideoDecoder(media / clip, seek_mode=mode, num_threads=1)
            m = dec.metadata
            h.update(repr((m.num_frames, m.duration_seconds, m.average_fps, m.begin_stream_seconds)).encode())
            n = len(dec)
            for start in range(0, n, 32):
                eat(dec.get_frames_in_range(start, min(n, start + 32)))
            rng = np.random.default_rng(7)
            eat(dec.get_frames_at(rng.integers(0, n, 24).tolist()))
            times = rng.uniform(m.begin_stream_seconds, m.end_stream_seconds - 1e-3, 16).tolist()
            eat(dec.get_frames_played_at(times))
            g = torch.Generator().manual_seed(3)
            eat(samplers.clips_at_random_indices(dec, num_clips=4, num_frames_per_clip=4, generator=g))
            eat(samplers.clips_at_regular_timestamps(dec, seconds_between_clip_starts=2.0, num_frames_per_clip=2))
            dec.close()
    return {"digest": h.hexdigest(), "seconds": time.perf_counter() - t0}


def _run(checkout: Path, media: Path) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(media)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", help="commit to compare with (a worktree is made in /tmp)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(workload(Path(a.child))))
        return
    media = ROOT / "benchmarks" / "media"
    before = tree_at(a.before)
    after_head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    rows = []
    for k in range(a.rounds):
        if k % 2:  # alternate which runs first, so an order effect cancels out
            new, old = _run(ROOT, media), _run(before, media)
        else:
            old, new = _run(before, media), _run(ROOT, media)
        rows.append({"before": old, "after": new, "ratio": new["seconds"] / old["seconds"]})
        same_round = old["digest"] == new["digest"]
        print(f"before {old['seconds']:.2f} s  after {new['seconds']:.2f} s  same frames: {same_round}", flush=True)
    ratios = sorted(r["ratio"] for r in rows)
    same = all(r["before"]["digest"] == r["after"]["digest"] for r in rows)
    m = machine()
    lines = [
        f"# Before/after the redesign — {m['cpu']} ({m['cores']} cores), {m['date'][:10]}",
        "",
        f"`python benchmarks/refactor_ab.py --before {a.before}` (after = {after_head.stdout.strip()}): the workload "
        f"in `refactor_ab.py` (clips {', '.join(CLIPS)}; both seek modes; chunked iteration, scattered indices and "
        "times, two samplers), one decode thread, each checkout in its own process, pairs alternating A B, B A.",
        "",
        f"* Same frames, pts, durations, seeks and packets fed in every round (SHA-256 of every returned tensor and "
        f"of each call's decode counters): **{same}**",
        f"* Time after / before, pair by pair: median **{ratios[len(ratios) // 2]:.3f}** "
        f"(min {ratios[0]:.3f}, max {ratios[-1]:.3f}, {len(ratios)} pairs)",
        "",
        "| round | before (s) | after (s) | after / before |",
        "|---:|---:|---:|---:|",
    ]
    for k, r in enumerate(rows, 1):
        lines.append(f"| {k} | {r['before']['seconds']:.2f} | {r['after']['seconds']:.2f} | {r['ratio']:.3f} |")
    save(
        "refactor_ab", {"machine": m, "before": a.before, "rounds": rows, "same_frames": same}, "\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    main()
