"""gpudecode.data: the clip dataset with DataLoader workers and torch.distributed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gpudecode import FrameIndexError, InvalidArgumentError, VideoDecoder, samplers
from gpudecode.data import ClipDataset, VideoEntry, collate_clips, read_manifest

NAMES = ["h264_bframes", "h264_mkv", "hevc8", "vp9", "bt709"]


@pytest.fixture
def paths(video):
    return [video(n) for n in NAMES]


def test_items_match_the_sampler(paths):
    ds = ClipDataset(
        paths, sampler=samplers.clips_at_regular_indices, sampler_kwargs={"num_clips": 3, "num_frames_per_clip": 4}
    )
    assert len(ds) == 5
    item = ds[2]
    ref = samplers.clips_at_regular_indices(VideoDecoder(paths[2]), num_clips=3, num_frames_per_clip=4)
    assert torch.equal(item["frames"], ref.data)
    assert torch.equal(item["pts_seconds"], ref.pts_seconds)
    assert item["index"] == 2 and "label" not in item


def test_transform_and_labels(paths):
    ds = ClipDataset(
        [VideoEntry(str(p), label=i) for i, p in enumerate(paths)],
        sampler_kwargs={"num_clips": 1, "num_frames_per_clip": 2},
        transform=lambda b: b.data.float().mean(),
    )
    item = ds[4]
    assert item["label"] == 4 and item["frames"].dim() == 0


def test_manifests(paths, tmp_path):
    (tmp_path / "a.txt").write_text("\n".join(str(p) for p in paths) + "\n")
    (tmp_path / "a.csv").write_text("path,label\n" + "\n".join(f"{p},{i}" for i, p in enumerate(paths)))
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"path": str(p), "label": i}) for i, p in enumerate(paths)))
    for name in ("a.txt", "a.csv", "a.jsonl"):
        entries = read_manifest(tmp_path / name)
        assert [e.path for e in entries] == [str(p) for p in paths]
    assert read_manifest(tmp_path / "a.jsonl")[3].label == 3
    (tmp_path / "a.xml").write_text("<x/>")
    with pytest.raises(InvalidArgumentError, match=r"Supported formats are: \.txt, \.csv, \.jsonl"):
        read_manifest(tmp_path / "a.xml")


def test_validation(paths):
    with pytest.raises(InvalidArgumentError, match="empty"):
        ClipDataset([])
    with pytest.raises(FrameIndexError, match="The dataset has 5 videos"):
        ClipDataset(paths)[5]


def test_decoders_are_lazy_and_bounded(paths):
    ds = ClipDataset(paths, max_open_decoders=2, sampler_kwargs={"num_clips": 1})
    assert not ds._decoders
    for i in range(5):
        ds[i]
    assert len(ds._decoders) == 2
    ds.close()


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers(paths, context):
    ds = ClipDataset(
        paths, sampler=samplers.clips_at_regular_indices, sampler_kwargs={"num_clips": 2, "num_frames_per_clip": 2}
    )
    ds[0]  # a decoder opened in the parent must not be reused by the workers
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context=context)
    got = {item["index"]: item["frames"] for item in loader}
    for i in range(len(ds)):
        assert torch.equal(got[i], ds[i]["frames"])


def test_torchrun_distributed_sampler(paths, tmp_path):
    """Two processes with the gloo backend on the CPU, each with its DistributedSampler share."""
    manifest = tmp_path / "m.txt"
    manifest.write_text("\n".join(str(p) for p in paths))
    script = Path(__file__).parent / "ddp_check.py"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(manifest),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["world"] == 2 and r0["total"] == r1["total"] == 6  # 5 videos padded to 6 by the sampler
    assert set(r0["indices"]) | set(r1["indices"]) == set(range(5))


@pytest.fixture
def mixed(video):
    return [video("h264_bframes"), video("av1"), video("odd_size")]  # 96x64, 128x72, 65x49


def test_mixed_sizes_give_a_clear_error_in_a_dataloader(mixed):
    ds = ClipDataset(
        mixed, sampler=samplers.clips_at_regular_indices, sampler_kwargs={"num_clips": 1, "num_frames_per_clip": 2}
    )
    loader = torch.utils.data.DataLoader(ds, batch_size=3)
    with pytest.raises(InvalidArgumentError, match=r"different shapes .*frame_size=\(height, width\)"):
        next(iter(loader))


@pytest.mark.parametrize("workers", [0, 2])
def test_mixed_sizes_as_lists(mixed, workers):
    ds = ClipDataset(
        mixed,
        sampler=samplers.clips_at_regular_indices,
        mixed_sizes=True,
        sampler_kwargs={"num_clips": 1, "num_frames_per_clip": 2},
    )
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=workers, collate_fn=collate_clips)
    batch = next(iter(loader))
    assert batch["index"].tolist() == [0, 1, 2]
    for k, p in enumerate(mixed):
        ref = samplers.clips_at_regular_indices(VideoDecoder(p), num_clips=1, num_frames_per_clip=2)
        assert torch.equal(batch["frames"][k], ref.data) and torch.equal(batch["pts_seconds"][k], ref.pts_seconds)


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
def test_mixed_sizes_resized(mixed, order):
    ds = ClipDataset(
        mixed,
        sampler=samplers.clips_at_regular_indices,
        frame_size=(40, 60),
        decoder_kwargs={"dimension_order": order},
        sampler_kwargs={"num_clips": 1, "num_frames_per_clip": 2},
    )
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)))
    assert batch["frames"].shape == ((3, 1, 2, 3, 40, 60) if order == "NCHW" else (3, 1, 2, 40, 60, 3))
    ref = samplers.clips_at_regular_indices(VideoDecoder(mixed[1]), num_clips=1, num_frames_per_clip=2).data.float()
    want = (
        torch.nn.functional.interpolate(ref.reshape(-1, 3, 72, 128), size=(40, 60), mode="bilinear", antialias=True)
        .round()
        .clamp(0, 255)
        .to(torch.uint8)
    )
    got = (
        batch["frames"][1].reshape(-1, 3, 40, 60)
        if order == "NCHW"
        else batch["frames"][1].reshape(-1, 40, 60, 3).permute(0, 3, 1, 2)
    )
    assert torch.equal(got, want)


@pytest.mark.parametrize("workers", [0, 2])
def test_mixed_sizes_with_decode_time_transforms(mixed, workers):
    """Transforms make clips of videos of any size the same shape; frames are FFmpeg's resize and crop (the CLI)."""
    from oracle import cli_frames

    from gpudecode.transforms import CenterCrop, Resize

    ds = ClipDataset(
        mixed,
        sampler=samplers.clips_at_regular_indices,
        sampler_kwargs={"num_clips": 1, "num_frames_per_clip": 2},
        transforms=[Resize((40, 60)), CenterCrop((32, 32))],
        output_dtype=torch.float32,
    )
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3, num_workers=workers)))
    assert batch["frames"].shape == (3, 1, 2, 3, 32, 32) and batch["frames"].dtype == torch.float32
    for k, p in enumerate(mixed):
        want = torch.from_numpy(cli_frames(str(p), "scale=60:40:flags=bilinear,crop=32:32", 32, 32, rgb48=True))
        ref = samplers.clips_at_regular_indices(VideoDecoder(p), num_clips=1, num_frames_per_clip=2)
        fps = VideoDecoder(p).metadata.average_fps
        idx = [round(float(t) * fps) for t in ref.pts_seconds[0]]
        assert torch.equal(batch["frames"][k, 0], want[idx].permute(0, 3, 1, 2))
    with pytest.raises(InvalidArgumentError, match="Invalid transforms"):
        ClipDataset(mixed, transforms=Resize((4, 4)))  # type: ignore[arg-type]
