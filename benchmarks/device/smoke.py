"""First look on a GPU machine: does ``device="cuda"`` decode on NVDEC, and how close are its frames to the CPU's?

Prints, for the shipped sample and each clip given: the decoding device, any CPU-fallback reason, the largest
absolute pixel difference against ``device="cpu"`` (all frames), and frames/s of both. A traceback is printed in
full, so one run on a lent machine says what broke.

    python benchmarks/device/smoke.py [clip ...]
"""

from __future__ import annotations

import sys
import time
import traceback

import torch

from gpudecode import VideoDecoder, sample_video_path


def _all(path: str, device: str) -> tuple[torch.Tensor, str, str, float]:
    dec = VideoDecoder(path, device=device)
    t0 = time.perf_counter()
    data = dec.get_frames_in_range(0, len(dec)).data
    if device == "cuda":
        torch.cuda.synchronize()
    fps = len(dec) / (time.perf_counter() - t0)
    return data.cpu(), dec.decoding_device, str(dec.cpu_fallback.reason), fps


def _print_caps(nvc: object) -> None:
    """NVDEC's capabilities per codec and bit depth (4:2:0): the facts tests/fake_nvc.py imitates."""
    chroma = getattr(nvc.cudaVideoChromaFormat, "420")
    for codec in ("H264", "HEVC", "VP9", "AV1", "MPEG2", "MPEG4", "VP8"):
        for depth in (8, 10):
            try:
                caps = nvc.GetDecoderCaps(
                    gpuid=0, codec=getattr(nvc.cudaVideoCodec, codec), chromaformat=chroma, bitdepth=depth
                )
                print(f"caps {codec} {depth}-bit: {dict(caps)}")
            except Exception as exc:
                print(f"caps {codec} {depth}-bit: {type(exc).__name__}: {exc}")


def main() -> None:
    print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
    try:
        import PyNvVideoCodec as nvc

        print("PyNvVideoCodec", getattr(nvc, "__version__", "?"), [n for n in dir(nvc) if not n.startswith("_")])
        _print_caps(nvc)
    except Exception:
        traceback.print_exc()
    for path in [str(sample_video_path()), *sys.argv[1:]]:
        try:
            cpu, _, _, cpu_fps = _all(path, "cpu")
            gpu, where, why, gpu_fps = _all(path, "cuda")
            diff = (gpu.int() - cpu.int()).abs()
            print(
                f"{path}: {tuple(gpu.shape)} on {where} (fallback: {why}); max|gpu-cpu| {int(diff.max())}, "
                f"mean {float(diff.float().mean()):.3f}; cpu {cpu_fps:.0f} f/s, cuda {gpu_fps:.0f} f/s (first open)"
            )
        except Exception:
            print(f"{path}: FAILED")
            traceback.print_exc()


if __name__ == "__main__":
    main()
