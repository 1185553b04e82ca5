"""gpudecode.data.ResilientLoader: a crashed or hung DataLoader worker loses only the batch it was making."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, get_worker_info

from gpudecode import CudaUnavailableError, InvalidArgumentError, MediaError, WorkerCrashError, samplers
from gpudecode.data import ClipDataset, LostItems, ResilientLoader

NAMES = ["h264_bframes", "hevc8", "vp9", "bt709"]
N_ITEMS = 12


class Faulty(Dataset):
    """A clip dataset whose chosen items kill or hang the worker that reads them (never the main process).

    With ``once_dir``, each fault happens once (a marker file remembers it), as a transient crash would.
    """

    def __init__(
        self, inner: Dataset, crash: tuple[int, ...] = (), hang: tuple[int, ...] = (), once_dir: Path | None = None
    ) -> None:
        self.inner, self.crash, self.hang, self.once_dir = inner, crash, hang, once_dir

    def __len__(self) -> int:
        return len(self.inner)

    def _armed(self, index: int) -> bool:
        if get_worker_info() is None:
            return False
        if self.once_dir is None:
            return True
        marker = self.once_dir / f"fault{index}"
        if marker.exists():
            return False
        marker.touch()
        return True

    def __getitem__(self, index: int):
        if index in self.crash and self._armed(index):
            os.kill(os.getpid(), signal.SIGSEGV)
        if index in self.hang and self._armed(index):
            time.sleep(3600)
        return self.inner[index]


@pytest.fixture
def clips(video):
    paths = [video(NAMES[i % len(NAMES)]) for i in range(N_ITEMS)]
    return ClipDataset(
        paths, sampler=samplers.clips_at_regular_indices, sampler_kwargs={"num_clips": 1, "num_frames_per_clip": 2}
    )


def reference(dataset: Dataset, batch_size: int) -> list[dict]:
    """The oracle: a plain in-process DataLoader over the same items."""
    return list(DataLoader(dataset, batch_size=batch_size, num_workers=0))


def assert_same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g["index"], w["index"])
        assert torch.equal(g["frames"], w["frames"])
        assert torch.equal(g["pts_seconds"], w["pts_seconds"])


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_a_crash_loses_only_its_batch(clips, context):
    want = reference(clips, 3)
    loader = DataLoader(Faulty(clips, crash=(7,)), batch_size=3, num_workers=2, multiprocessing_context=context)
    resilient = ResilientLoader(loader)
    with pytest.warns(RuntimeWarning, match=r"lost batch 2 \(dataset indices \[6, 7, 8\]\).*SIGSEGV"):
        got = list(resilient)
    assert_same(got, [want[0], want[1], want[3]])
    assert len(resilient.lost) == 1
    lost = resilient.lost[0]
    assert (lost.batch_number, lost.indices) == (2, (6, 7, 8)) and "SIGSEGV" in lost.reason


def test_a_crash_out_of_order(clips):
    """With in_order=False batches arrive as made; tags, not arrival order, say which one was lost."""
    want = reference(clips, 2)
    loader = DataLoader(Faulty(clips, crash=(5,)), batch_size=2, num_workers=2, in_order=False)
    resilient = ResilientLoader(loader)
    with pytest.warns(RuntimeWarning, match=r"lost batch 2 \(dataset indices \[4, 5\]\)"):
        got = sorted(resilient, key=lambda b: int(b["index"][0]))
    assert_same(got, [w for k, w in enumerate(want) if k != 2])


def test_a_hung_worker_is_killed_after_the_timeout(clips):
    want = reference(clips, 4)
    loader = DataLoader(Faulty(clips, hang=(5,)), batch_size=4, num_workers=2)
    resilient = ResilientLoader(loader, batch_timeout_s=2)
    start = time.monotonic()
    with pytest.warns(RuntimeWarning, match="longer than 2 s"):
        got = list(resilient)
    assert time.monotonic() - start < 30
    assert_same(got, [want[0], want[2]])
    assert [(x.batch_number, x.indices) for x in resilient.lost] == [(1, (4, 5, 6, 7))]


def test_the_loader_timeout_is_the_default_batch_timeout(clips):
    loader = DataLoader(Faulty(clips, hang=(0,)), batch_size=6, num_workers=1, timeout=2)
    resilient = ResilientLoader(loader)
    assert resilient.batch_timeout_s == 2
    with pytest.warns(RuntimeWarning, match="longer than 2 s"):
        got = list(resilient)
    assert_same(got, reference(clips, 6)[1:])


def test_persistent_workers_recover_for_the_next_epoch(clips, tmp_path):
    want = reference(clips, 3)
    loader = DataLoader(
        Faulty(clips, crash=(4,), once_dir=tmp_path), batch_size=3, num_workers=2, persistent_workers=True
    )
    resilient = ResilientLoader(loader)
    with pytest.warns(RuntimeWarning, match="lost batch 1"):
        first = list(resilient)
    assert_same(first, [want[0], *want[2:]])
    second = list(resilient)  # the fault was transient: nothing lost, lost list reset
    assert_same(second, want)
    assert resilient.lost == []


def test_too_many_losses_end_the_epoch(clips):
    # Deterministic: one worker, and the two crashes in consecutive batches. (Before: two workers and crashes in
    # batches 0 and 2, where whether batch 1 got through depended on when the main process saw the second death.)
    loader = DataLoader(Faulty(clips, crash=(1, 4)), batch_size=3, num_workers=1)
    resilient = ResilientLoader(loader, max_lost_batches=1)
    got = []
    with pytest.warns(RuntimeWarning), pytest.raises(WorkerCrashError, match=r"Too many lost batches \(2\)"):
        got.extend(resilient)
    assert got == []
    assert [(x.batch_number, x.indices) for x in resilient.lost] == [(0, (0, 1, 2)), (1, (3, 4, 5))]


def _check_worker_dataset(_worker_id: int) -> None:
    info = get_worker_info()
    assert len(info.dataset.entries) == N_ITEMS  # the user's dataset's attributes stay reachable


def test_worker_init_fn_sees_the_dataset(clips):
    loader = DataLoader(clips, batch_size=6, num_workers=2, worker_init_fn=_check_worker_dataset)
    assert_same(list(ResilientLoader(loader)), reference(clips, 6))


def test_workers_dying_outside_the_dataset_raise(clips):
    def die(_worker_id: int) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    loader = DataLoader(clips, batch_size=4, num_workers=1, worker_init_fn=die)
    with pytest.raises(WorkerCrashError, match="without making a batch"):
        list(ResilientLoader(loader))


def test_a_death_while_workers_start_costs_a_round(clips, monkeypatch):
    """torch's SIGCHLD handler can raise while the iterator starts (before its pids are withdrawn): restart."""
    want = reference(clips, 6)
    real_iter = DataLoader.__iter__
    calls = []

    def flaky(self):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. ")
        return real_iter(self)

    monkeypatch.setattr(DataLoader, "__iter__", flaky)
    resilient = ResilientLoader(DataLoader(clips, batch_size=6, num_workers=1))
    assert_same(list(resilient), want)
    assert len(calls) == 2 and resilient.lost == []


@pytest.mark.parametrize("workers", [0, 2])
def test_on_error_skip_drops_only_the_failing_items(video, tmp_path, workers):
    bad = tmp_path / "not_a_video.mp4"
    bad.write_text("hello")
    paths = [video(NAMES[i % len(NAMES)]) for i in range(6)]
    paths[4] = bad
    ds = ClipDataset(
        paths, sampler=samplers.clips_at_regular_indices, sampler_kwargs={"num_clips": 1, "num_frames_per_clip": 2}
    )
    loader = DataLoader(ds, batch_size=3, num_workers=workers)
    with pytest.raises(MediaError):
        list(ResilientLoader(loader))
    resilient = ResilientLoader(loader, on_error="skip")
    with pytest.warns(RuntimeWarning, match=r"dataset indices \[4\]\): MediaError"):
        got = list(resilient)
    assert [b["index"].tolist() for b in got] == [[0, 1, 2], [3, 5]]
    good = ClipDataset(
        [p for i, p in enumerate(paths) if i != 4],
        sampler=samplers.clips_at_regular_indices,
        sampler_kwargs={"num_clips": 1, "num_frames_per_clip": 2},
    )
    want = reference(good, 5)[0]
    assert torch.equal(torch.cat([b["frames"] for b in got]), want["frames"])
    assert resilient.lost == [LostItems(1, (4,), resilient.lost[0].reason)]


class NoCuda(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        raise CudaUnavailableError("Cannot return frames on cuda:0: simulated")


@pytest.mark.parametrize("workers", [0, 1])
def test_on_error_skip_still_raises_set_up_errors(workers):
    with pytest.raises(CudaUnavailableError, match="simulated"):
        list(ResilientLoader(DataLoader(NoCuda(), batch_size=2, num_workers=workers), on_error="skip"))


def test_unbatched_loader_and_distributed_sampler(clips):
    sampler = DistributedSampler(Faulty(clips, crash=(5,)), num_replicas=2, rank=1, shuffle=True, seed=3)
    sampler.set_epoch(1)
    order = list(sampler)
    loader = DataLoader(Faulty(clips, crash=(5,)), batch_size=None, sampler=sampler, num_workers=2)
    resilient = ResilientLoader(loader)
    with pytest.warns(RuntimeWarning, match=r"dataset indices \[5\]"):
        got = list(resilient)
    assert [item["index"] for item in got] == [i for i in order if i != 5]
    assert [x.batch_number for x in resilient.lost] == [order.index(5)]
    for item in got:
        assert torch.equal(item["frames"], clips[item["index"]]["frames"])


def test_in_process_and_clean_runs_match_the_plain_loader(clips):
    want = reference(clips, 5)
    assert_same(list(ResilientLoader(DataLoader(clips, batch_size=5))), want)
    resilient = ResilientLoader(DataLoader(clips, batch_size=5, num_workers=2, in_order=False))
    got = sorted(resilient, key=lambda b: int(b["index"][0]))
    assert_same(got, want)
    assert resilient.lost == [] and len(resilient) == 3


def test_validation(clips):
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(3))

    with pytest.raises(InvalidArgumentError, match=r"Pass a torch\.utils\.data\.DataLoader"):
        ResilientLoader(clips)
    with pytest.raises(InvalidArgumentError, match="map-style"):
        ResilientLoader(DataLoader(Stream()))
    loader = DataLoader(clips)
    with pytest.raises(InvalidArgumentError, match="batch_timeout_s"):
        ResilientLoader(loader, batch_timeout_s=0)
    with pytest.raises(InvalidArgumentError, match="max_lost_batches"):
        ResilientLoader(loader, max_lost_batches=-1)
    with pytest.raises(InvalidArgumentError, match="Supported values are: raise, skip"):
        ResilientLoader(loader, on_error="ignore")
