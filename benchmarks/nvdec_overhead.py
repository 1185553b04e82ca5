"""Python-side cost per frame of the NVDEC path, without a GPU (issue 13, item 4).

The NVDEC backend runs over the test fake of PyNvVideoCodec (``tests/fake_nvc.py``) whose decoder *replays*
surfaces recorded once (no decoding in the timed loop) and a no-op colour kernel, so what is timed is gpudecode's
own work per frame: planner, packet feeding (Annex B, ``PacketData``), surface wrapping, plane/pitch lookup, kernel
argument assembly and output handling. Variants run side by side, one process each per round (A B A B ...):

* ``after``: this checkout;
* ``before``: the package as of ``--before REV``, from ``git archive``.

    python benchmarks/nvdec_overhead.py --rounds 7    # writes benchmarks/results/nvdec_overhead.{json,md}
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save, tree_at

ROOT = Path(__file__).resolve().parent.parent
MEDIA = Path(__file__).resolve().parent / "media"
FRAMES = 480


def make_clip() -> Path:
    from make_media import encode

    p = MEDIA / "overhead_h264_320x240.mp4"
    if not p.exists():
        encode(p, codec="libx264", w=320, h=240, n=FRAMES, pix_fmt="yuv420p", options={"preset": "veryfast"})
    return p


def worker(path: str, repeats: int) -> float:
    """Seconds per frame of ``get_frames_in_range(0, n)`` through the NVDEC backend over a replaying fake."""
    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    from fake_nvc import FakeDecoder, make_module

    from gpudecode import VideoDecoder
    from gpudecode._backends._nvdec import Modules, create_nvdec_backend, decoder_cache

    recorded: list[list] = []
    replay = {"on": False, "i": 0}
    real_decode = FakeDecoder.Decode

    def decode(self, pd):  # record every call's surfaces once, then hand them back without decoding
        if not replay["on"]:
            out = real_decode(self, pd)
            recorded.append(list(out))
            self._live = []  # keep recorded surfaces intact
            return out
        out = recorded[replay["i"] % len(recorded)]
        replay["i"] += 1
        return out

    FakeDecoder.Decode = decode
    nvc = make_module()
    mods = Modules(nvc=nvc, convert=lambda **kw: None, cuda_ok=False)
    dec = VideoDecoder(path)
    n = len(dec)

    def run() -> None:
        backend = create_nvdec_backend(
            torch.device("cpu"), dec._session.pipe.demuxer.stream, 8, dec._state.color, modules=mods
        )
        dec._session.pipe.use_backend(backend)
        dec.get_frames_in_range(0, n)
        backend.close()

    run()  # records
    replay["on"] = True
    best = float("inf")
    for _ in range(repeats):
        replay["i"] = 0
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    decoder_cache.clear()
    return best / n


def _run(code_dir: Path, path: Path) -> float | str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(code_dir), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, __file__, "--worker", str(path)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return f"exit {r.returncode}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}"
    return float(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--before", default="baea9a7", help="git revision of the 'before' variant")
    ap.add_argument("--worker")
    a = ap.parse_args()
    if a.worker:
        print(worker(a.worker, repeats=3))
        return
    clip = make_clip()
    variants = {"before": tree_at(a.before, "gpudecode", "kernels"), "after": ROOT}
    per_frame: dict[str, list[float]] = {v: [] for v in variants}
    failures: dict[str, list[str]] = {v: [] for v in variants}
    for _ in range(a.rounds):
        for v, code in variants.items():
            res = _run(code, clip)
            if isinstance(res, str):
                failures[v].append(res)
            else:
                per_frame[v].append(res)
    med = {v: statistics.median(t) if t else None for v, t in per_frame.items()}
    m = machine()
    lines = [
        f"# NVDEC path: Python cost per frame (fake decoder replaying surfaces, no-op kernel) — {m['cpu']} "
        f"({m['cores']} cores), {m['date'][:10]}",
        "",
        f"`get_frames_in_range(0, {FRAMES})` on a 320x240 H.264 clip through `NvdecBackend`; per process the "
        f"best of 3 runs, median over {a.rounds} interleaved rounds. `before` = {a.before}. No GPU: this is "
        "gpudecode's own per-frame work (planner, feeding, surface and kernel-argument handling, output).",
        "",
        "Not visible here: on a GPU `after` converts each surface straight into its slot of the batch "
        "(`NvdecBackend.convert_into`), removing a per-frame allocation and device-to-device copy; with the "
        "CPU stand-in both variants still convert into a temporary and copy it (most of the time left, by "
        "cProfile), and the no-op kernel hides the cached matrix and CuPy stream.",
        "",
        "| variant | µs / frame | frames/s |",
        "|---|---:|---:|",
    ]
    for v, x in med.items():
        lines.append(f"| {v} | {x * 1e6:.1f} | {1 / x:,.0f} |" if x else f"| {v} | — | — |")
    if med["before"] and med["after"]:
        lines += ["", f"after/before time ratio: **{med['after'] / med['before']:.3f}**"]
    for v, f in failures.items():
        if f:
            lines.append(f"\n{v} failed: {f[0]}")
    save(
        "nvdec_overhead",
        {"machine": m, "per_frame_s": per_frame, "median_s": med, "failures": failures},
        "\n".join(lines) + "\n",
    )


if __name__ == "__main__":
    main()
