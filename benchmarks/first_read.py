"""Sequential decode, first read in a fresh process against later ones (issue 15): where the gap to the loop is.

``benchmarks/sequential.py`` times one read per fresh process, so gpudecode's time there includes mapping the memory
of its first output batches (the frame pool is empty). This script times, in one process pinned to one CPU, the bare
PyAV loop (``to_ndarray('rgb24')`` per frame, nothing kept) and gpudecode (chunks of 32, each dropped) three times
each, alternating; read 1 of gpudecode maps its batches, reads 2 and 3 reuse them from the pool. Each process
starts fresh (``--rounds`` of them), and the ratio is taken per process and read.

    python benchmarks/first_read.py --rounds 5 --clips h264_1280x720 h264_1920x1080 av1_1920x1080
    # writes benchmarks/results/first_read.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save
from sequential import CHUNK, CLIPS, _decode_chunks, _decode_pyav, make_clips

ROOT = Path(__file__).resolve().parent.parent
READS = 3


def _child(path: str) -> dict[str, list[float]]:
    """Alternate a loop read and a gpudecode read, ``READS`` times each, one CPU, one decode thread (times as in
    ``sequential.py``: the decode, not the open)."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from gpudecode import VideoDecoder

    def ours() -> float:
        with VideoDecoder(path, num_threads=1) as dec:
            return _decode_chunks(dec, len(dec))

    out: dict[str, list[float]] = {"pyav": [], "gpudecode": []}
    for _ in range(READS):
        out["pyav"].append(_decode_pyav(path, 1)[1])
        out["gpudecode"].append(ours())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="fresh processes per clip")
    ap.add_argument(
        "--clips", nargs="*", choices=list(CLIPS), default=["h264_1280x720", "h264_1920x1080", "av1_1920x1080"]
    )
    ap.add_argument("--child")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(a.child)))
        return
    paths = make_clips(a.clips, 240)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    runs: dict[str, list[dict[str, list[float]]]] = {c: [] for c in a.clips}
    for _ in range(a.rounds):
        for clip in a.clips:
            cmd = [sys.executable, __file__, "--child", str(paths[clip])]
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            runs[clip].append(json.loads(r.stdout.strip().splitlines()[-1]))
    m = machine()
    lines = [
        f"# First read against later reads, one thread — {m['cpu']} ({m['cores']} cores), {m['date'][:10]}",
        "",
        f"`python benchmarks/first_read.py --rounds {a.rounds}`: per fresh process, a bare PyAV loop and gpudecode "
        f"(chunks of {CHUNK}, dropped) alternate {READS} times on one CPU; 240 frames, open excluded. Median over "
        "processes of gpudecode's time / the loop's time in the same read. Read 1 maps gpudecode's output memory "
        "(empty frame pool); later reads reuse it.",
        "",
        "| clip | loop ms (read 1) | gpudecode ms (read 1) | ratio read 1 | ratio read 2 | ratio read 3 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for clip, rs in runs.items():
        ratios = [statistics.median(r["gpudecode"][k] / r["pyav"][k] for r in rs) for k in range(READS)]
        loop1 = statistics.median(r["pyav"][0] for r in rs) * 1e3
        ours1 = statistics.median(r["gpudecode"][0] for r in rs) * 1e3
        lines.append(f"| {clip} | {loop1:.0f} | {ours1:.0f} | " + " | ".join(f"{x:.3f}" for x in ratios) + " |")
    save("first_read", {"machine": m, "reads": READS, "chunk": CHUNK, "runs": runs}, "\n".join(lines))


if __name__ == "__main__":
    main()
