"""Mutation fuzzer for gpudecode's decoding path: every case runs in a child process (crash/hang-safe).

A case mutates a fixture video (bit flips, zeroed or random byte runs, truncation, duplicated or deleted chunks),
then in a child process opens it from bytes in both seek modes (and through a file object in exact mode) and
requests frames through every access call.
Allowed outcomes: frames, or one of gpudecode's own errors. Findings: any other exception (a leak from PyAV/NumPy),
a crash (signal), or a hang (timeout).

    python tests/fuzz.py --cases 2000 --jobs 2        # longer run; prints findings and writes them to --out
    python tests/fuzz.py --focus moov --cases 1500    # only the MP4 tables gpudecode parses itself
    python tests/fuzz.py --backend nvdec --cases 1000  # the NVDEC backend over the fake PyNvVideoCodec
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Apply 1-3 random mutations; return the bytes and a description."""
    buf = bytearray(data)
    ops = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["flip", "zero", "random", "truncate", "dup", "delete"])
        n = len(buf)
        if n < 16:
            break
        pos = rng.randrange(n)
        span = rng.choice([1, 4, 16, 256, 4096])
        if kind == "flip":
            buf[pos] ^= 1 << rng.randrange(8)
        elif kind == "zero":
            buf[pos : pos + span] = bytes(min(span, n - pos))
        elif kind == "random":
            buf[pos : pos + span] = bytes(rng.getrandbits(8) for _ in range(min(span, n - pos)))
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "dup":
            buf[pos:pos] = buf[pos : pos + span]
        else:
            del buf[pos : pos + span]
        ops.append(f"{kind}@{pos}+{span}")
    return bytes(buf), ",".join(ops)


def mutate_moov(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Apply 1-4 mutations inside an MP4's ``moov`` box (gpudecode parses its tables itself), field-aware."""
    at = data.find(b"moov")
    if at < 4:
        return mutate(data, rng)
    start, end = at - 4, min(len(data), at - 4 + int.from_bytes(data[at - 4 : at], "big"))
    buf = bytearray(data)
    ops = []
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(start, end)
        kind = rng.choice(["flip", "byte", "int32", "zero4"])
        if kind == "flip":
            buf[pos] ^= 1 << rng.randrange(8)
        elif kind == "byte":
            buf[pos] = rng.randrange(256)
        elif kind == "int32":
            value = rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, rng.getrandbits(32)])
            buf[pos : pos + 4] = value.to_bytes(4, "big")
        else:
            buf[pos : pos + 4] = bytes(4)
        ops.append(f"moov-{kind}@{pos}")
    return bytes(buf[: len(data)]), ",".join(ops)


def _every_call(dec: Any, outcome: str) -> str:
    """Every access call on ``dec``; returns ``outcome``, or the gpudecode error class met."""
    import math

    from gpudecode import GpudecodeError, samplers

    n = len(dec)
    m = dec.metadata
    calls = [
        lambda d=dec: d[0],
        lambda d=dec, n=n: d[n - 1],
        lambda d=dec, n=n: d.get_frames_at([n // 2, 0, n - 1]),
        lambda d=dec, n=n: d.get_frames_in_range(0, n, max(1, n // 5)),
        lambda d=dec, m=m: d.get_frame_played_at(m.begin_stream_seconds),
        lambda d=dec, m=m: d.get_frames_played_in_range(
            m.begin_stream_seconds, min(m.end_stream_seconds or math.inf, m.begin_stream_seconds + 0.5)
        ),
        lambda d=dec: samplers.clips_at_random_indices(d, num_clips=2, num_frames_per_clip=2),
    ]
    for call in calls:
        try:
            call()
        except GpudecodeError as exc:
            outcome = type(exc).__name__
    dec.close()
    return outcome


def exercise(data: bytes) -> str:
    """Run in the child: every access call, both modes (and exact mode through a file object). Returns 'ok' or the
    gpudecode error class met."""
    import io

    import gpudecode
    from gpudecode import GpudecodeError

    outcome = "ok"
    for mode, source in (("exact", data), ("approximate", data), ("exact", io.BytesIO(data))):
        try:
            dec = gpudecode.VideoDecoder(source, seek_mode=mode, num_threads=1)
        except GpudecodeError as exc:
            outcome = type(exc).__name__
            continue
        outcome = _every_call(dec, outcome)
    return outcome


def exercise_nvdec(data: bytes) -> str:
    """Run in the child: the same calls, both modes, through the NVDEC backend over the fake PyNvVideoCodec (a real
    FFmpeg decoder behind NVDEC's API, no minimum size, a no-op kernel): Annex B conversion, the unreferenced-picture
    filter, feeding, draining and surface handling on damaged input. 'NvdecUnavailable' where the backend refuses
    the stream (the user's decoder would fall back to the CPU)."""
    import torch
    from fake_nvc import make_module

    import gpudecode
    from gpudecode import GpudecodeError
    from gpudecode._backends._nvdec import Modules, NvdecUnavailable, create_nvdec_backend

    mods = Modules(nvc=make_module(caps={"width_min": 0, "height_min": 0}), convert=lambda **kw: None, cuda_ok=False)
    outcome = "ok"
    for mode in ("exact", "approximate"):
        try:
            dec = gpudecode.VideoDecoder(data, seek_mode=mode, num_threads=1)
            stream = dec._session.pipe.demuxer.stream
            backend = create_nvdec_backend(
                torch.device("cpu"), stream, dec.metadata.bit_depth, dec._state.color, modules=mods
            )
        except GpudecodeError as exc:
            outcome = type(exc).__name__
            continue
        except NvdecUnavailable:
            outcome = "NvdecUnavailable"
            continue
        dec._session.pipe.use_backend(backend)
        outcome = _every_call(dec, outcome)
    return outcome


def _answer(run: Any, data: bytes, q: Any) -> None:
    """Put ``run(data)``'s outcome on ``q``, or the leak: any exception that is not gpudecode's own."""
    try:
        q.put(("ok", run(data)))
    except BaseException as exc:
        import traceback

        message = f"{type(exc).__module__}.{type(exc).__name__}: {str(exc)[:2000]}"
        q.put(("leak", f"{message}\n{traceback.format_exc()[-1500:]}"))


def _child(data: bytes, q: Any) -> None:
    _answer(exercise, data, q)


def _child_nvdec(data: bytes, q: Any) -> None:
    _answer(exercise_nvdec, data, q)


_CTX: Any = None


def _context() -> Any:
    """Children fork from a single-threaded server that preloaded gpudecode: fast, and never forked mid-lock.

    (Forking straight from a multi-threaded parent can copy a lock another thread holds, and the child then hangs:
    an early run reported such a harness artifact as a "hang" that never reproduced.)
    """
    global _CTX
    if _CTX is None:
        if "forkserver" in mp.get_all_start_methods():
            _CTX = mp.get_context("forkserver")
            _CTX.set_forkserver_preload(["gpudecode", "gpudecode.samplers"])
        else:
            _CTX = mp.get_context("spawn")
    return _CTX


def _answer_huge(data: bytes, q: Any) -> None:
    """Harness self-check: an answer far larger than a pipe buffer."""
    q.put(("leak", "x" * 500_000))


def _die(data: bytes, q: Any) -> None:
    """Harness self-check: a child killed by a signal before answering."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def _stall(data: bytes, q: Any) -> None:
    """Harness self-check: a child that never answers."""
    time.sleep(3600)


def run_case(data: bytes, timeout_s: float = 20.0, target: Any = None) -> tuple[str, str]:
    """('ok'|'leak'|'crash'|'hang', detail) for one input, in a fresh child process (``target``: tests only)."""
    ctx = _context()
    q = ctx.Queue()
    p = ctx.Process(target=target or _child, args=(data, q))
    p.start()
    # Read the answer before joining: a child blocks at exit until what it put on the queue is read, so joining
    # first turns a large answer into a false "hang" (the likely cause of the unreproduced ones).
    deadline = time.monotonic() + timeout_s
    result: tuple[str, str] | None = None
    while result is None:
        try:
            result = q.get(timeout=0.05)
        except queue.Empty:
            if not p.is_alive():
                try:
                    result = q.get(timeout=1.0)  # it may have answered just before exiting
                except queue.Empty:
                    p.join()
                    return "crash", f"exit code {p.exitcode}"
            elif time.monotonic() > deadline:
                p.kill()
                p.join()
                return "hang", f"no answer after {timeout_s} s"
    p.join(5)
    if p.is_alive():
        p.kill()
        p.join()
    return result


def seeds(media_dir: Path) -> list[Path]:
    """The fixture videos mutated: H.264 MP4/MKV, HEVC, VP9, an edit list, MPEG-4 AVI, MPEG-TS and MPEG-2 PS."""
    from media import SPECS, Spec, make_video, remux

    out = []
    for name in ("h264_bframes", "h264_mkv", "hevc8", "vp9", "editlist", "mpeg4_avi"):
        spec = SPECS[name]
        ext = {"matroska": "mkv", "webm": "webm", "avi": "avi"}.get(spec.container, spec.container)
        path = media_dir / f"{name}.{ext}"
        if not path.exists():
            make_video(spec, path)
        out.append(path)
    ts = media_dir / "h264_bframes.ts"  # no container index; seeks land inside the GOP
    if not ts.exists():
        remux(out[0], ts, "mpegts")
    ps = media_dir / "mpeg2_ps.mpg"  # timestamps re-framed by FFmpeg's parser
    if not ps.exists():
        make_video(Spec("mpeg2_ps", codec="mpeg2video", container="mpeg", options={"g": "10", "bf": "2"}), ps)
    return [*out, ts, ps]


def fuzz(
    media_dir: Path,
    cases: int,
    seed: int,
    jobs: int = 1,
    deadline_s: float | None = None,
    focus: str = "file",
    backend: str = "cpu",
) -> dict[str, Any]:
    """Run ``cases`` mutations (or until ``deadline_s``); return counts and findings.

    ``focus="moov"`` mutates only the ``moov`` box of the MP4 seeds (the tables gpudecode parses itself);
    ``backend="nvdec"`` decodes through the NVDEC backend over the fake PyNvVideoCodec instead of the CPU backend.
    """
    target = _child_nvdec if backend == "nvdec" else None
    rng = random.Random(seed)
    paths = seeds(media_dir)
    if focus == "moov":
        paths = [p for p in paths if p.suffix == ".mp4"]
    corpus = [p.read_bytes() for p in paths]
    mutator = mutate_moov if focus == "moov" else mutate
    inputs = []
    for _ in range(cases):
        data, how = mutator(rng.choice(corpus), rng)
        inputs.append((data, how))
    counts: dict[str, int] = {}
    findings = []
    t0 = time.time()
    done = 0
    from concurrent.futures import ThreadPoolExecutor

    def one(item: tuple[bytes, str]) -> tuple[str, str, str, bytes]:
        data, how = item
        if deadline_s is not None and time.time() - t0 > deadline_s:
            return "skipped", "", how, data
        kind, detail = run_case(data, target=target)
        return kind, detail, how, data

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for kind, detail, how, data in pool.map(one, inputs):
            if kind == "skipped":
                continue
            done += 1
            key = detail if kind == "ok" else kind
            counts[key] = counts.get(key, 0) + 1
            if kind != "ok":
                findings.append({"kind": kind, "mutation": how, "detail": detail[:2000], "size": len(data)})
    return {"cases_run": done, "seconds": round(time.time() - t0, 1), "outcomes": counts, "findings": findings}


def main() -> None:
    import gpudecode  # noqa: F401 - imported once here, so forked children start warm (milliseconds, not seconds)

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--media", default="/tmp/gpudecode-fuzz-media")
    ap.add_argument("--out", default=None, help="write the report as JSON here")
    ap.add_argument(
        "--focus",
        choices=["file", "moov"],
        default="file",
        help="mutate anywhere in the file, or only inside the MP4 seeds' moov box",
    )
    ap.add_argument(
        "--backend",
        choices=["cpu", "nvdec"],
        default="cpu",
        help="decode with the CPU backend, or the NVDEC backend over the fake PyNvVideoCodec (no GPU needed)",
    )
    args = ap.parse_args()
    media = Path(args.media)
    media.mkdir(parents=True, exist_ok=True)
    report = fuzz(media, args.cases, args.seed, args.jobs, focus=args.focus, backend=args.backend)
    print(json.dumps({k: v for k, v in report.items() if k != "findings"}, indent=2))
    for f in report["findings"]:
        print(f"\n[{f['kind']}] {f['mutation']} ({f['size']} bytes)\n{f['detail']}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
