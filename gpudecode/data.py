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
from gpudecode._args import as_int
from gpudecode._decoder import VideoDecoder
from gpudecode._errors import FrameIndexError, InvalidArgumentError
from gpudecode._frame import FrameBatch
from gpudecode._resilient import LostItems, ResilientLoader

__all__ = ["ClipDataset", "LostItems", "ResilientLoader", "VideoEntry", "collate_clips", "read_manifest"]


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


def _resized(batch: FrameBatch, size: tuple[int, int], channels_last: bool) -> FrameBatch:
    """The batch with every frame resized to ``size`` (bilinear, antialiased; uint8 in, uint8 out)."""
    data = batch.data
    lead, frame = data.shape[:-3], data.shape[-3:]
    x = data.reshape(-1, *frame)
    x = x.permute(0, 3, 1, 2) if channels_last else x
    if (x.shape[-2], x.shape[-1]) != size:
        x = (
            torch.nn.functional.interpolate(x.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
            .round_()
            .clamp_(0, 255)
            .to(torch.uint8)
        )
    x = x.permute(0, 2, 3, 1) if channels_last else x
    return FrameBatch(
        data=x.reshape(*lead, *x.shape[1:]), pts_seconds=batch.pts_seconds, duration_seconds=batch.duration_seconds
    )


def collate_clips(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A DataLoader ``collate_fn`` for clips of different sizes: lists where torch's default would stack.

    Args:
        items: The :class:`ClipDataset` items of one batch.

    Returns:
        ``{"frames": [tensor, ...], "pts_seconds": [tensor, ...], "index": int64 tensor}``, plus ``"label"``
        (collated by torch's ``default_collate``) when every item has one.
    """
    out: dict[str, Any] = {
        "frames": [it["frames"] for it in items],
        "pts_seconds": [it["pts_seconds"] for it in items],
        "index": torch.tensor([it["index"] for it in items], dtype=torch.int64),
    }
    if items and all("label" in it for it in items):
        out["label"] = torch.utils.data.default_collate([it["label"] for it in items])
    return out


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
        frame_size: ``(height, width)`` to resize every clip to (bilinear with antialiasing, on the frames'
            device, before ``transform``), so that videos of different sizes batch together; ``None`` keeps each
            video's size.
        transforms: Decode-time transforms (:mod:`gpudecode.transforms`) every video's decoder applies, e.g.
            ``[Resize((256, 256)), RandomCrop((224, 224))]``: clips of same-shaped frames from videos of any size,
            resized by FFmpeg while decoding (cheaper than ``frame_size``, which resizes whole decoded frames). A
            ``RandomCrop`` draws its place when a video's decoder opens.
        output_dtype: The decoders' ``output_dtype`` (``torch.uint8``, ``torch.float32`` or ``"auto"``).
        mixed_sizes: ``True`` when a DataLoader batches items of different sizes itself, with
            ``collate_fn=gpudecode.data.collate_clips`` (lists instead of stacked tensors).

    Items are dicts: ``frames`` (the batch's data, or the transform's result), ``pts_seconds``, ``index``, and
    ``label`` when the video has one.

    Raises:
        InvalidArgumentError: (when a DataLoader fetches a batch) the batch's clips differ in shape and neither
            ``frame_size`` nor ``mixed_sizes`` says how to batch them; torch's own collate would fail there with
            "stack expects each tensor to be equal size" or, in workers, "Trying to resize storage that is not
            resizable".
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
        frame_size: tuple[int, int] | None = None,
        mixed_sizes: bool = False,
        transforms: Sequence[Any] | None = None,
        output_dtype: torch.dtype | str = torch.uint8,
    ) -> None:
        if isinstance(videos, (str, os.PathLike)):
            self.entries = read_manifest(videos)
        else:
            self.entries = [v if isinstance(v, VideoEntry) else VideoEntry(os.fspath(v)) for v in videos]
        if not self.entries:
            raise InvalidArgumentError("Invalid videos (empty). Pass at least one video path or a manifest.")
        if not callable(sampler):
            raise InvalidArgumentError(f"Invalid sampler ({sampler!r}). Pass a function from gpudecode.samplers.")
        max_open_decoders = as_int(max_open_decoders, "max_open_decoders", 1)
        if frame_size is not None:
            if not isinstance(frame_size, (tuple, list)) or len(frame_size) != 2:
                raise InvalidArgumentError(
                    f"Invalid frame_size ({frame_size!r}). Supported values are: None or (height, width)."
                )
            frame_size = (as_int(frame_size[0], "frame_size height", 1), as_int(frame_size[1], "frame_size width", 1))
        self.frame_size = frame_size
        self.mixed_sizes = bool(mixed_sizes)
        self.sampler = sampler
        self.sampler_kwargs = dict(sampler_kwargs or {})
        self.transform = transform
        self.device = device
        self.seek_mode = seek_mode
        self.decoder_kwargs = dict(decoder_kwargs or {})
        if transforms is not None:
            if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
                raise InvalidArgumentError(
                    f"Invalid transforms ({transforms!r}). Supported values are: a sequence of decoder transforms."
                )
            self.decoder_kwargs["transforms"] = list(transforms)
        if output_dtype is not torch.uint8:
            self.decoder_kwargs["output_dtype"] = output_dtype
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
            dec = VideoDecoder(
                self.entries[index].path, device=self.device, seek_mode=self.seek_mode, **self.decoder_kwargs
            )
            self._decoders[index] = dec
            while len(self._decoders) > self.max_open_decoders:
                _, old = self._decoders.popitem(last=False)
                old.close()
        else:
            self._decoders.move_to_end(index)
        return dec

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample clips from video ``index``."""
        index = as_int(index, "index")
        if not 0 <= index < len(self.entries):
            raise FrameIndexError(
                f"Invalid index ({index}). The dataset has {len(self.entries)} videos; supported "
                f"indices are 0..{len(self.entries) - 1}."
            )
        batch = self.sampler(self.decoder(index), **self.sampler_kwargs)
        if self.frame_size is not None:
            batch = _resized(batch, self.frame_size, self.decoder_kwargs.get("dimension_order") == "NHWC")
        frames = self.transform(batch) if self.transform is not None else batch.data
        item = {"frames": frames, "pts_seconds": batch.pts_seconds, "index": index}
        if self.entries[index].label is not None:  # default_collate cannot batch None
            item["label"] = self.entries[index].label
        return item

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """The items of one DataLoader batch; says clearly when their clips cannot be stacked.

        Raises:
            InvalidArgumentError: The clips differ in shape, and neither ``frame_size`` nor ``mixed_sizes`` is set.
        """
        items = [self[i] for i in indices]
        if not self.mixed_sizes:
            shapes = {tuple(it["frames"].shape) for it in items if isinstance(it["frames"], torch.Tensor)}
            if len(shapes) > 1:
                raise InvalidArgumentError(
                    f"Invalid batch: videos {list(indices)} give clips of different shapes {sorted(shapes)}, which "
                    "cannot be stacked into one batch. Pass frame_size=(height, width) to ClipDataset to resize "
                    "every clip, or mixed_sizes=True to ClipDataset and collate_fn=gpudecode.data.collate_clips to "
                    "the DataLoader to get lists."
                )
        return items

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_decoders"] = OrderedDict()  # decoders never travel to spawned workers
        return state

    def close(self) -> None:
        """Close this process's decoders."""
        for dec in self._decoders.values():
            dec.close()
        self._decoders.clear()
