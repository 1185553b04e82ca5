"""What ResilientLoader costs: a clean epoch (no crash) through a plain DataLoader and through ResilientLoader, and
the price of one crash (detection, fresh workers, the lost batch), in one run.

    python benchmarks/loader_overhead.py            # writes benchmarks/results/loader_overhead.{json,md}

Dataset: ClipDataset over the shipped sample video (320x180) repeated, 2 clips x 8 frames per item, batch size 8,
2 fork workers. The "one crash" case kills the worker making batch 3 (SIGKILL, as the OOM killer would).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, machine, save

import gpudecode
from gpudecode import samplers
from gpudecode.data import ClipDataset, ResilientLoader


class KillOnce(Dataset):
    """Kills the worker that reads item ``victim`` (each epoch)."""

    def __init__(self, inner: Dataset, victim: int | None) -> None:
        self.inner, self.victim = inner, victim

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> Any:
        if index == self.victim and get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner[index]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    clips = ClipDataset(
        [gpudecode.sample_video_path()] * args.items,
        sampler=samplers.clips_at_regular_indices,
        sampler_kwargs={"num_clips": 2, "num_frames_per_clip": 8},
    )

    def loader(victim: int | None = None) -> DataLoader:
        return DataLoader(KillOnce(clips, victim), batch_size=8, num_workers=2, multiprocessing_context="fork")

    def epoch(it: Any) -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return sum(len(b["index"]) for b in it)

    cases = {
        "plain DataLoader": lambda: epoch(loader()),
        "ResilientLoader": lambda: epoch(ResilientLoader(loader())),
        "ResilientLoader, one worker killed": lambda: epoch(ResilientLoader(loader(victim=8 * 3 + 2))),
    }
    res = interleaved(cases, rounds=args.rounds)
    base = res["plain DataLoader"]["median_s"]
    for v in res.values():
        v["ratio_to_plain"] = v["median_s"] / base
        v["items_per_s"] = args.items / v["median_s"]
    payload = {"machine": machine(), "gpudecode": gpudecode.__version__, "items": args.items, "results": res}
    m = payload["machine"]
    lines = [
        f"# ResilientLoader overhead — {m['cpu']} ({m['cores']} cores), {m['date'][:10]}",
        "",
        f"{args.items} items (2 clips x 8 frames of 320x180), batch 8, 2 fork workers; medians of "
        f"{args.rounds} interleaved rounds.",
        "",
        "| case | median s | items/s | ratio to plain |",
        "|---|---:|---:|---:|",
    ]
    for name, v in res.items():
        lines.append(f"| {name} | {v['median_s']:.3f} | {v['items_per_s']:.0f} | {v['ratio_to_plain']:.2f} |")
    save("loader_overhead", payload, "\n".join(lines))


if __name__ == "__main__":
    main()
