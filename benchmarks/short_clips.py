"""Many short clips (the inference-server pattern): each clip opened and decoded once, gpudecode beside torchcodec.

Clips: eight synthetic sources (H.264, HEVC, VP9 and AV1 at sizes from 426x240 to 1280x720, 5 s each) cut without
re-encoding, at keyframes, into ``--clips`` different files of 1 to 5 s in MP4, MKV and WebM. Each library runs in
its own process over every clip: open, decode every frame, close; the processes alternate (A B, B A, ...) and the
ratio is taken pair by pair. Run by hand from an environment with torchcodec (its wheel links CUDA torch):

    /path/to/venv-with-torchcodec/bin/python benchmarks/short_clips.py --clips 200 --rounds 3
    # writes benchmarks/results/short_clips.{json,md}

``--device cuda`` runs gpudecode on NVDEC, torchcodec on its CUDA backend and PyNvVideoCodec's ``SimpleDecoder``
(RGB, device memory) for the GPU kit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save
from make_media import MEDIA, encode

CLIPS_DIR = MEDIA / "short_clips"
SOURCES = [  # (name, codec, width, height, options, container)
    ("h264_360", "libx264", 640, 360, {"preset": "veryfast", "bf": "2", "g": "25"}, "mp4"),
    ("h264_720", "libx264", 1280, 720, {"preset": "veryfast", "bf": "2", "g": "25"}, "mkv"),
    ("hevc_360", "libx265", 640, 360, {"preset": "ultrafast", "x265-params": "log-level=none:keyint=25"}, "mp4"),
    ("hevc_480", "libx265", 854, 480, {"preset": "ultrafast", "x265-params": "log-level=none:keyint=25"}, "mkv"),
    ("vp9_240", "libvpx-vp9", 426, 240, {"deadline": "realtime", "cpu-used": "8", "g": "25"}, "webm"),
    ("vp9_480", "libvpx-vp9", 854, 480, {"deadline": "realtime", "cpu-used": "8", "g": "25"}, "webm"),
    ("av1_360", "libsvtav1", 640, 360, {"preset": "12", "g": "25"}, "mkv"),
    ("h264_270", "libx264", 480, 270, {"preset": "veryfast", "g": "25"}, "mp4"),
]


def _cut(src: Path, dst: Path, start_key: int, seconds: float) -> bool:
    """Copy the packets of ``src`` from its ``start_key``-th keyframe for ``seconds`` into ``dst`` (no re-encode)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s = inp.streams.video[0]
        o = out.add_stream_from_template(s, opaque=True)
        keys = -1
        first = None
        for pkt in inp.demux(s):
            if pkt.dts is None:
                continue
            keys += pkt.is_keyframe
            if keys < start_key:
                continue
            if first is None:
                first = pkt.dts
            if (pkt.dts - first) * s.time_base >= seconds and pkt.is_keyframe:
                break
            pkt.stream = o
            out.mux(pkt)
    return first is not None


def make_clips(count: int) -> list[Path]:
    """The clips (made once; kept in benchmarks/media/short_clips)."""
    made = sorted(CLIPS_DIR.glob("clip_*"))
    if len(made) >= count:
        return made[:count]
    sources = []
    for name, codec, w, h, options, ext in SOURCES:
        path = MEDIA / f"short_src_{name}.{ext}"
        if not path.exists():
            encode(path, codec=codec, w=w, h=h, n=125, options=options)
        sources.append(path)
    CLIPS_DIR.mkdir(parents=True, exist_ok=True)
    clips = []
    for k in range(count):
        src = sources[k % len(sources)]
        seconds = 1 + (k * 7 % 5)  # 1..5 s
        dst = CLIPS_DIR / f"clip_{k:03d}{src.suffix}"
        if _cut(src, dst, (k // len(sources)) % 4 if seconds < 5 else 0, seconds):
            clips.append(dst)
    return clips


def _child(lib: str, device: str, threads: int, clips: list[str]) -> dict[str, object]:
    """Open and decode every clip; return the total time, frames and the time per source codec."""
    import av

    if lib == "gpudecode":
        from gpudecode import VideoDecoder

        def decode(c: str) -> int:
            with VideoDecoder(c, device=device, num_threads=threads or None) as dec:
                return dec.get_frames_in_range(0, len(dec)).data.shape[0]
    elif lib == "pynvc":  # PyNvVideoCodec's own high-level decoder, RGB on the GPU, each frame taken into torch
        import PyNvVideoCodec as nvc
        import torch

        gpu = torch.device(device).index or 0

        def decode(c: str) -> int:
            dec = nvc.SimpleDecoder(c, gpu_id=gpu, use_device_memory=True, output_color_type=nvc.OutputColorType.RGB)
            return len([torch.from_dlpack(f) for f in dec[0 : len(dec)]])
    else:
        from torchcodec.decoders import VideoDecoder as TcDecoder

        def decode(c: str) -> int:
            dec = TcDecoder(c, device=device, num_ffmpeg_threads=threads)
            return dec.get_frames_in_range(0, len(dec)).data.shape[0]

    codecs = {}
    for c in clips:
        with av.open(c) as f:
            codecs[c] = f.streams.video[0].codec_context.codec.name.replace("libdav1d", "av1")
    frames = 0
    failed: list[str] = []
    per_codec: dict[str, float] = {}
    t0 = time.perf_counter()
    for c in clips:
        t = time.perf_counter()
        try:
            frames += decode(c)
        except Exception as exc:  # a library that cannot decode a clip: counted, and its time still spent
            failed.append(f"{Path(c).name}: {type(exc).__name__}: {str(exc)[:80]}")
        per_codec[codecs[c]] = per_codec.get(codecs[c], 0.0) + time.perf_counter() - t
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - t0, "frames": frames, "per_codec": per_codec, "failed": failed}


def _run(lib: str, device: str, threads: int, clips: list[Path]) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", lib, "--device", device, "--threads", str(threads)]
    out = subprocess.run(
        cmd,
        input="\n".join(map(str, clips)),
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run_or_fail(lib: str, device: str, threads: int, clips: list[Path]) -> dict[str, object]:
    """As :func:`_run`; a library that cannot run at all (not installed) is recorded as failing every clip."""
    try:
        return _run(lib, device, threads, clips)
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or "").strip().splitlines()[-1:] or [""]
        return {"seconds": float("nan"), "frames": 0, "per_codec": {}, "failed": [f"process: {last[0][:120]}"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 0], help="decode threads (0: the library's all)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        clips = [line for line in sys.stdin.read().splitlines() if line]
        print(json.dumps(_child(a.child, a.device, a.threads[0], clips)))
        return
    clips = make_clips(a.clips)
    libs = ["gpudecode", "torchcodec"] + (["pynvc"] if a.device.startswith("cuda") else [])
    rows = []
    for threads in a.threads:
        for k in range(a.rounds):
            order = libs[k % len(libs) :] + libs[: k % len(libs)]  # each library first in turn
            res = {lib: _run_or_fail(lib, a.device, threads, clips) for lib in order}
            ratio = res["gpudecode"]["seconds"] / res["torchcodec"]["seconds"]
            rows.append({"threads": threads, **res, "ratio": ratio})
            print(f"threads={threads} " + "  ".join(f"{lib} {res[lib]['seconds']:.2f} s" for lib in libs), flush=True)
    m = machine()
    lines = [
        f"# Many short clips — {m['cpu']} ({m['cores']} cores), {m['date'][:10]}, device {a.device}",
        "",
        f"`python benchmarks/short_clips.py --clips {a.clips} --rounds {a.rounds} --device {a.device}`: "
        f"{len(clips)} clips of 1-5 s (H.264, HEVC, VP9, AV1; 426x240 to 1280x720; MP4/MKV/WebM), each opened "
        "and decoded whole once per round, each library in its own process, pairs alternating.",
        "",
        "| decode threads | " + " | ".join(f"{lib} clips/s" for lib in libs) + " | time ratio gpudecode / torchcodec "
        "(median) |",
        "|---|" + "---:|" * (len(libs) + 1),
    ]
    for threads in a.threads:
        sel = [r for r in rows if r["threads"] == threads]
        med = sorted(r["ratio"] for r in sel)[len(sel) // 2]
        rates = [sorted(len(clips) / r[lib]["seconds"] for r in sel)[len(sel) // 2] for lib in libs]
        lines.append(f"| {threads or 'all'} | " + " | ".join(f"{x:.1f}" for x in rates) + f" | {med:.3f} |")
    lines += [
        "",
        "Time ratio gpudecode / torchcodec per source codec (median over rounds; one decode thread where run):",
        "",
    ]
    sel = [r for r in rows if r["threads"] == a.threads[0]]
    for codec in sorted(sel[0]["gpudecode"]["per_codec"]):
        rs = sorted(
            r["gpudecode"]["per_codec"][codec] / r["torchcodec"]["per_codec"].get(codec, float("nan")) for r in sel
        )
        lines.append(f"* {codec}: {rs[len(rs) // 2]:.3f}")
    for lib in libs:
        failed = sel[0][lib]["failed"]
        lines += ["", f"Clips {lib} could not decode: {len(failed)}" + (":" if failed else "."), ""]
        lines += [f"* `{f}`" for f in failed]
    lines += [
        "",
        "torchcodec decodes with the FFmpeg it finds on the system (here libavcodec 59, FFmpeg 5); gpudecode with "
        "the FFmpeg in PyAV's wheel, so part of a per-codec difference can be the FFmpeg build's.",
    ]
    save(
        "short_clips", {"machine": m, "device": a.device, "clips": len(clips), "rounds": rows}, "\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    main()
