"""Training-data integration: a map-style ``Dataset`` of clips over many videos.

Each item decodes clips from one video with a sampler from :mod:`gpudecode.samplers`. Decoders are opened lazily,
inside whichever process reads the item, so ``DataLoader(num_workers>0)`` and
``torch.utils.data.distributed.DistributedSampler`` work unchanged: every worker (and every rank) owns its decoders.

On CUDA, two set-ups work:

* decode in the main process (``num_workers=0``) with ``device="cuda"``: NVDEC runs asynchronously from the Python
  thread and frames never leave the GPU; the simplest and usually the fastest set-up, since NVDEC, not the CPU,
  is the limit;
* decode in spawned workers (``multiprocessing_context="spawn"``): each worker creates its own CUDA context and NVDEC
  sessions (a CUDA context cannot cross a fork); costs GPU memory per worker and moves tensors between processes
  through CUDA IPC. Use it when per-item Python work (transforms) is the bottleneck.

A worker that crashes or hangs ends a plain ``DataLoader``'s epoch; :class:`ResilientLoader` wraps the loader so
that it costs only the batch that worker was making (see :mod:`gpudecode._resilient`).

Scaling beyond one machine is torch.distributed's job: give the loader a ``DistributedSampler``. For offline batch
inference over many files, Ray Data's ``map_batches`` with a function that opens a ``VideoDecoder`` per batch is a
good fit; gpudecode does not reinvent either.
"""

from __future__ import annotations

import csv
import json
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gpudecode import samplers as _samplers
from gpudecode._decoder import VideoDecoder
from gpudecode._errors import FrameIndexError, InvalidArgumentError
from gpudecode._frame import FrameBatch
from gpudecode._resilient import LostItems, ResilientLoader

__all__ = ["ClipDataset", "LostItems", "ResilientLoader", "VideoEntry", "read_manifest"]


@dataclass(frozen=True)
class VideoEntry:
    """One video of a dataset.

    Attributes:
        path: Path of the video file.
        label: Optional label (any JSON/CSV value) returned with the clips.
    """

    path: str
    label: Any = None


def read_manifest(manifest: str | os.PathLike[str]) -> list[VideoEntry]:
    """Read a manifest of videos.

    Formats: ``.txt`` with one path per line, ``.csv`` with a ``path`` column (and optionally ``label``), or
    ``.jsonl`` with ``{"path": ..., "label": ...}`` objects. Relative paths are resolved against the manifest's folder.

    Raises:
        InvalidArgumentError: An unknown manifest format, or an entry without a path.
    """
    mpath = Path(manifest)
    base = mpath.parent
    suffix = mpath.suffix.lower()
    entries: list[VideoEntry] = []
    with open(mpath, newline="") as f:
        if suffix == ".csv":
            for row in csv.DictReader(f):
                if not row.get("path"):
                    raise InvalidArgumentError(f"Invalid manifest row {row!r}: every row needs a 'path'.")
                entries.append(VideoEntry(str(base / row["path"]), row.get("label")))
        elif suffix in (".jsonl", ".json"):
            for line in f:
                if line.strip():
                    obj = json.loads(line)
                    if "path" not in obj:
                        raise InvalidArgumentError(f"Invalid manifest line {line.strip()!r}: it needs a 'path'.")
                    entries.append(VideoEntry(str(base / obj["path"]), obj.get("label")))
        elif suffix in (".txt", ".lst", ""):
            entries = [VideoEntry(str(base / line.strip())) for line in f if line.strip()]
        else:
            raise InvalidArgumentError(f"Invalid manifest ({mpath.name}). Supported formats are: .txt, .csv, .jsonl.")
    return entries


class ClipDataset(torch.utils.data.Dataset):
    """Clips sampled from a list of videos: item ``i`` holds the clips of video ``i``.

    Args:
        videos: Paths, :class:`VideoEntry` objects, or the path of a manifest (see :func:`read_manifest`).
        sampler: A sampler from :mod:`gpudecode.samplers` (default ``clips_at_random_indices``).
        sampler_kwargs: Its arguments, e.g. ``{"num_clips": 4, "num_frames_per_clip": 16}``.
        transform: Called on the sampled :class:`~gpudecode.FrameBatch`; its result replaces ``frames`` in the item.
        device: Where frames are decoded/returned (``"cpu"`` or ``"cuda"``; see the module notes for workers).
        seek_mode: Passed to :class:`~gpudecode.VideoDecoder`; ``"approximate"`` opens large collections faster.
        decoder_kwargs: Other :class:`~gpudecode.VideoDecoder` arguments (``dimension_order``, ``num_threads``...).
        max_open_decoders: Decoders kept open per process (least recently used are closed).

    Items are dicts: ``frames`` (the batch's data, or the transform's result), ``pts_seconds``, ``index``, and
    ``label`` when the video has one.
    """

    def __init__(
        self,
        videos: Sequence[str | os.PathLike[str] | VideoEntry] | str | os.PathLike[str],
        *,
        sampler: Callable[..., FrameBatch] = _samplers.clips_at_random_indices,
        sampler_kwargs: dict[str, Any] | None = None,
        transform: Callable[[FrameBatch], Any] | None = None,
        device: str | torch.device = "cpu",
        seek_mode: str = "exact",
        decoder_kwargs: dict[str, Any] | None = None,
        max_open_decoders: int = 4,
    ) -> None:
        if isinstance(videos, (str, os.PathLike)):
            self.entries = read_manifest(videos)
        else:
            self.entries = [v if isinstance(v, VideoEntry) else VideoEntry(os.fspath(v)) for v in videos]
        if not self.entries:
            raise InvalidArgumentError("Invalid videos (empty). Pass at least one video path or a manifest.")
        if not callable(sampler):
            raise InvalidArgumentError(f"Invalid sampler ({sampler!r}). Pass a function from gpudecode.samplers.")
        if max_open_decoders < 1:
            raise InvalidArgumentError(f"Invalid max_open_decoders ({max_open_decoders}). Supported values: >= 1.")
        self.sampler = sampler
        self.sampler_kwargs = dict(sampler_kwargs or {})
        self.transform = transform
        self.device = device
        self.seek_mode = seek_mode
        self.decoder_kwargs = dict(decoder_kwargs or {})
        self.max_open_decoders = max_open_decoders
        self._decoders: OrderedDict[int, VideoDecoder] = OrderedDict()
        self._pid = os.getpid()

    def __len__(self) -> int:
        """Number of videos."""
        return len(self.entries)

    def decoder(self, index: int) -> VideoDecoder:
        """The (lazily opened, per-process) decoder of video ``index``."""
        if self._pid != os.getpid():  # a worker: never touch decoders inherited from the parent
            self._decoders = OrderedDict()
            self._pid = os.getpid()
        dec = self._decoders.get(index)
        if dec is None:
            dec = VideoDecoder(self.entries[index].path, device=self.device, seek_mode=self.seek_mode,
                               **self.decoder_kwargs)
            self._decoders[index] = dec
            while len(self._decoders) > self.max_open_decoders:
                _, old = self._decoders.popitem(last=False)
                old.close()
        else:
            self._decoders.move_to_end(index)
        return dec

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample clips from video ``index``."""
        if not 0 <= index < len(self.entries):
            raise FrameIndexError(f"Invalid index ({index}). The dataset has {len(self.entries)} videos; supported "
                                  f"indices are 0..{len(self.entries) - 1}.")
        batch = self.sampler(self.decoder(index), **self.sampler_kwargs)
        frames = self.transform(batch) if self.transform is not None else batch.data
        item = {"frames": frames, "pts_seconds": batch.pts_seconds, "index": index}
        if self.entries[index].label is not None:  # default_collate cannot batch None
            item["label"] = self.entries[index].label
        return item

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_decoders"] = OrderedDict()  # decoders never travel to spawned workers
        return state

    def close(self) -> None:
        """Close this process's decoders."""
        for dec in self._decoders.values():
            dec.close()
        self._decoders.clear()
