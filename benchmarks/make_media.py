"""Make the videos the benchmarks and the package use (all synthetic, made by us with PyAV's encoders).

python benchmarks/make_media.py sample   # gpudecode/assets/sample.mp4 (shipped in the wheel)
python benchmarks/make_media.py seed     # benchmarks/media/seed_{short,long}.mp4 (seed experiment)
python benchmarks/make_media.py gpu      # benchmarks/media/{h264,hevc,h264b}_1080p.mp4 (GPU benchmark)
"""

from __future__ import annotations

import argparse
import fractions
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT / "benchmarks" / "media"


def scene(i: int, w: int, h: int, rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """A moving, textured scene: drifting gradient background, film grain, a few moving discs."""
    shift = (i * 3) % w
    img = np.roll(base, shift, axis=1).copy()
    t = i / 25.0
    yy, xx = np.ogrid[:h, :w]
    for k in range(4):
        cx = (0.5 + 0.4 * np.sin(t * (0.7 + 0.3 * k) + k)) * w
        cy = (0.5 + 0.4 * np.cos(t * (0.5 + 0.2 * k) + 2 * k)) * h
        r = (0.06 + 0.02 * k) * h
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        img[mask] = ((k * 70 + 40) % 256, (k * 110 + 90) % 256, (k * 50 + 160) % 256)
    grain = rng.integers(-6, 7, size=(h, w, 1), dtype=np.int16)
    return np.clip(img.astype(np.int16) + grain, 0, 255).astype(np.uint8)


def encode(
    path: Path,
    *,
    codec: str,
    w: int,
    h: int,
    n: int,
    fps: int = 25,
    bit_rate: int | None = None,
    options: dict[str, str] | None = None,
    pix_fmt: str = "yuv420p",
) -> Path:
    """Encode ``n`` synthetic frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    base = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 128 // (w + h) + 64)], -1).astype(np.uint8)
    c = av.open(str(path), "w")
    s = c.add_stream(codec, rate=fps)
    s.width, s.height, s.pix_fmt = w, h, pix_fmt
    s.codec_context.time_base = fractions.Fraction(1, fps)
    if bit_rate:
        s.bit_rate = bit_rate
    if options:
        s.options = options
    for i in range(n):
        f = av.VideoFrame.from_ndarray(scene(i, w, h, rng, base), "rgb24").reformat(format=pix_fmt)
        f.pts = i
        f.time_base = fractions.Fraction(1, fps)
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return path


def loop(src: Path, dst: Path, times: int) -> Path:
    """Concatenate ``src`` with itself ``times`` times by remuxing (no re-encoding)."""
    inp = av.open(str(src))
    ist = inp.streams.video[0]
    packets = [p for p in inp.demux(ist) if p.size]
    span = max(p.pts + (p.duration or 0) for p in packets) - min(p.pts for p in packets)
    out = av.open(str(dst), "w")
    ost = out.add_stream_from_template(ist)
    for k in range(times):
        for p in packets:
            q = av.Packet(bytes(p))
            q.pts, q.dts = p.pts + k * span, p.dts + k * span
            q.duration = p.duration
            q.is_keyframe = p.is_keyframe
            q.time_base = p.time_base
            q.stream = ost
            out.mux(q)
    out.close()
    inp.close()
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["sample", "seed", "gpu"])
    what = ap.parse_args().what
    if what == "sample":
        out = encode(
            ROOT / "gpudecode" / "assets" / "sample.mp4",
            codec="libx264",
            w=320,
            h=180,
            n=100,
            options={"crf": "28", "preset": "slow", "bf": "3", "g": "50"},
        )
        print(out, out.stat().st_size, "bytes")
    elif what == "seed":
        short = encode(
            MEDIA / "seed_short.mp4",
            codec="libx264",
            w=640,
            h=360,
            n=345,
            bit_rate=500_000,
            options={"preset": "medium"},
        )
        long = loop(short, MEDIA / "seed_long.mp4", 100)
        for p in (short, long):
            print(p, p.stat().st_size, "bytes")
    else:
        x265 = {"preset": "ultrafast", "x265-params": "log-level=none"}
        x264b = {"preset": "veryfast", "bf": "3"}  # B-frames, as most H.264 in the wild has (ultrafast has none)
        for codec, name, options in (
            ("libx264", "h264_1080p.mp4", {"preset": "ultrafast"}),
            ("libx265", "hevc_1080p.mp4", x265),
            ("libx264", "h264b_1080p.mp4", x264b),
        ):
            if (MEDIA / name).exists():
                continue
            out = encode(MEDIA / name, codec=codec, w=1920, h=1080, n=300, bit_rate=8_000_000, options=options)
            print(out, out.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
