"""Run under torchrun (gloo, CPU): each rank loads its DistributedSampler share of a ClipDataset."""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist

from gpudecode import samplers
from gpudecode.data import ClipDataset


def main() -> None:
    manifest, out_dir = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    ds = ClipDataset(
        manifest, sampler=samplers.clips_at_regular_indices, sampler_kwargs={"num_clips": 2, "num_frames_per_clip": 3}
    )
    sampler = torch.utils.data.distributed.DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=1, sampler=sampler, num_workers=1)
    seen = []
    for item in loader:
        assert item["frames"].shape[1:3] == (2, 3)
        seen.append(int(item["index"][0]))
    total = torch.tensor([len(seen)])
    dist.all_reduce(total)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "world": world, "indices": seen, "total": int(total)}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
