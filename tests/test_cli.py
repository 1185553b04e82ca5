"""The gpudecode command line."""

from __future__ import annotations

import json
import subprocess
import sys

import av
import numpy as np
import pytest
import torch

from gpudecode import VideoDecoder, sample_video_path
from gpudecode.__main__ import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpudecode", *args], capture_output=True, text=True, timeout=300)


def test_info_json(video, capsys):
    assert main(["info", str(video("h264_bframes")), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metadata"]["num_frames"] == 40 and out["index"]["num_keyframes"] >= 1
    assert out["decoding_device"] == "cpu"


def test_info_text(video, capsys):
    assert main(["info", str(video("h264_mkv"))]) == 0
    text = capsys.readouterr().out
    assert "num_frames: 40" in text and "keyframes at (s):" in text


def test_frames_png_round_trip(video, tmp_path, capsys):
    path = video("rotated90")
    assert main(["frames", str(path), "--at", "0,7,39", "-o", str(tmp_path), "--json"]) == 0
    written = json.loads(capsys.readouterr().out)["written"]
    dec = VideoDecoder(path, dimension_order="NHWC")
    for w, i in zip(written, (0, 7, 39), strict=True):
        with av.open(w["path"]) as c:
            png = next(c.decode(video=0)).to_ndarray(format="rgb24")
        assert np.array_equal(png, dec[i].numpy())


def test_frames_pt_by_time(video, tmp_path, capsys):
    path = video("h264_bframes")
    assert main(["frames", str(path), "--times", "0.5,1.0", "-o", str(tmp_path), "--format", "pt"]) == 0
    files = sorted(tmp_path.glob("*.pt"))
    assert len(files) == 2
    saved = torch.load(files[0])
    assert torch.equal(saved["data"], VideoDecoder(path).get_frame_played_at(0.5).data)


def test_bench_json(capsys):
    assert main(["bench", str(sample_video_path()), "--rounds", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["results"][0]
    assert res["device"] == "cpu" and res["sequential_frames_per_s"] > 0 and res["clip_sampling_frames_per_s"] > 0


def test_demo_runs():
    res = run("demo", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert "frames/s" in res.stdout and "decoding on: cpu" in res.stdout and "num_frames: 100" in res.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["frames", "/no/such/file.mp4", "--at", "1", "-o", "/tmp/x"], 1, "No such file"),
        (["info", "/no/such/file.mp4"], 1, "No such file"),
        (["frames", str(sample_video_path()), "--at", "1000", "-o", "/tmp/x"], 1, "Invalid frame index"),
        (["frames", str(sample_video_path()), "--at", "1"], 2, "required"),
        (["bench"], 2, "required"),
        (["frames", str(sample_video_path()), "--at", "1,x", "-o", "/tmp/x"], 2, "argument --at: invalid list '1,x'"),
        (["frames", str(sample_video_path()), "--times", "abc", "-o", "/tmp/x"], 2, "argument --times: invalid list"),
        (["frames", str(sample_video_path()), "--at", ",", "-o", "/tmp/x"], 2, "invalid list"),
    ],
)
def test_exit_codes(args, code, message):
    res = run(*args)
    assert res.returncode == code
    assert message in res.stderr


def test_version():
    import gpudecode

    res = run("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"gpudecode {gpudecode.__version__}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CUDA line on a machine without a GPU")
def test_bench_without_a_gpu_prints_cpu_results_and_one_line_for_cuda():
    res = run("bench", str(sample_video_path()), "--device", "cpu,cuda", "--rounds", "1")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    cpu = [ln for ln in lines if ln.startswith("cpu ")]
    cuda = [ln for ln in lines if ln.startswith("cuda ")]
    assert len(cpu) == 1 and float(cpu[0].split()[2]) > 0  # sequential frames/s measured
    assert len(cuda) == 1 and "not measured: Cannot return frames on cuda" in cuda[0]


def test_demo_prints_the_essentials_first():
    res = run("demo", "--device", "cpu")
    first = res.stdout.splitlines()[1]
    m = VideoDecoder(sample_video_path()).metadata
    assert first.startswith(f"{m.width}x{m.height}, ") and " fps, " in first and m.codec in first


def test_cpu_fallback_never_prints_empty(video, capsys):
    dec = VideoDecoder(video("h264_bframes"))
    assert str(dec.cpu_fallback) == "[CPU] Fallback status: No fallback required" and not dec.cpu_fallback
    assert main(["info", str(video("h264_bframes")), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cpu_fallback"] is None
