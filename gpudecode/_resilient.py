"""A DataLoader wrapper that survives crashed and hung workers, losing only the batch that was being made.

PyTorch's ``DataLoader`` ends the whole epoch with ``RuntimeError: DataLoader worker (pid ...) exited
unexpectedly`` when one worker dies (a segfault in a codec, the kernel's OOM killer), and waits forever on a worker
that hangs. :class:`ResilientLoader` runs the user's own ``DataLoader`` configuration, tags every batch with its
position in the epoch, and tracks in shared memory which batch each worker is making. When a worker dies (or is
killed after ``batch_timeout_s``), that batch is recorded in :attr:`ResilientLoader.lost` and skipped, and a fresh
set of workers carries on with the batches not yet delivered, in the same order.

Implementation notes: the wrapped iterator's worker pids are taken out of torch's SIGCHLD bookkeeping (otherwise
torch raises the worker's death from a signal handler, at an arbitrary point of the training loop), and the
iterator polls with a short timeout (0.25 s) so that a death is noticed quickly.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from gpudecode._errors import (
    CudaUnavailableError,
    GpudecodeError,
    InvalidArgumentError,
    WorkerCrashError,
    invalid_choice,
)

__all__ = ["LostItems", "ResilientLoader"]

_POLL_S = 0.25  # how often a waiting main process checks on its workers
_DEAD_WORKERS = re.compile(r"DataLoader worker \(pids?(?:\(s\))? ([\d, ]+)\)")
_MAX_FRUITLESS_RESTARTS = 3
_PID, _BATCH, _START_NS = 0, 1, 2  # columns of the shared worker table
_ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class LostItems:
    """Dataset items a :class:`ResilientLoader` could not deliver.

    Attributes:
        batch_number: Position of the batch in its epoch (0-based, in the order of the loader's sampler).
        indices: Dataset indices that were lost: the whole batch after a crash or a timeout, only the failing items
            when ``on_error="skip"`` caught an error (the rest of the batch was delivered).
        reason: What happened, e.g. ``"worker 4711 was killed by SIGSEGV"``, ``"batch took longer than 30 s"``, or
            the error an item raised.
    """

    batch_number: int
    indices: tuple[int, ...]
    reason: str


class _Tagged:
    """What the wrapped dataset hands the wrapped collate function: the batch number and the items."""

    __slots__ = ("batch_number", "failures", "value")

    def __init__(self, batch_number: int, value: Any, failures: list[tuple[int, str]]) -> None:
        self.batch_number = batch_number
        self.value = value
        self.failures = failures


class _TrackedDataset(Dataset):
    """Wraps the user's dataset: records in shared memory which batch each worker is making."""

    def __init__(self, dataset: Dataset, table: torch.Tensor, skip_errors: bool) -> None:
        self.dataset = dataset
        self.table = table
        self.skip_errors = skip_errors

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        """The user's dataset's attributes (``get_worker_info().dataset`` is this wrapper in a worker)."""
        inner = self.__dict__.get("dataset")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def _started(self, batch_number: int) -> None:
        info = get_worker_info()
        if info is not None:
            row = self.table[info.id]
            row[_BATCH] = -1
            row[_PID] = os.getpid()
            row[_START_NS] = time.monotonic_ns()
            row[_BATCH] = batch_number

    def _fetch(self, index: int, failures: list[tuple[int, str]]) -> Any:
        if not self.skip_errors:
            return self.dataset[index]
        try:
            return self.dataset[index]
        except CudaUnavailableError:
            raise  # the machine's set-up, not this item's data: every item would fail
        except GpudecodeError as exc:
            failures.append((index, f"{type(exc).__name__}: {exc}"))
            return None

    def __getitem__(self, key: tuple[int, int]) -> _Tagged:  # no auto-collation: one item per batch
        batch_number, index = key
        self._started(batch_number)
        failures: list[tuple[int, str]] = []
        return _Tagged(batch_number, self._fetch(index, failures), failures)

    def __getitems__(self, keys: list[tuple[int, int]]) -> _Tagged:
        batch_number = keys[0][0]
        self._started(batch_number)
        indices = [index for _, index in keys]
        failures: list[tuple[int, str]] = []
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems and not self.skip_errors:
            return _Tagged(batch_number, getitems(indices), failures)
        items = [self._fetch(index, failures) for index in indices]
        lost = {index for index, _ in failures}
        kept = [item for index, item in zip(indices, items, strict=True) if index not in lost]
        return _Tagged(batch_number, kept, failures)


class _TaggedCollate:
    """Wraps the user's collate function: returns ``(batch_number, batch or None, failures)``, marks the worker idle."""

    def __init__(self, collate_fn: Callable[[Any], Any], table: torch.Tensor) -> None:
        self.collate_fn = collate_fn
        self.table = table

    def __call__(self, tagged: _Tagged) -> tuple[int, Any, list[tuple[int, str]]]:
        empty = bool(tagged.failures) and (not isinstance(tagged.value, list) or not tagged.value)
        batch = None if empty else self.collate_fn(tagged.value)
        info = get_worker_info()
        if info is not None:
            self.table[info.id, _BATCH] = -1
        return (tagged.batch_number, batch, tagged.failures)


def _own_cuda(obj: Any) -> Any:
    """Copy CUDA tensors received from a worker into this process's memory.

    A CUDA tensor from a worker lives in that worker's memory (CUDA IPC) and is valid only while the worker lives;
    a loader that restarts its workers must not hand out such tensors.
    """
    if isinstance(obj, torch.Tensor):
        return obj.clone() if obj.is_cuda else obj
    if isinstance(obj, dict):
        return {k: _own_cuda(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_own_cuda(v) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_own_cuda(v) for v in obj)
    return obj


class _EpochKeys:
    """The batch sampler the inner loader sees: this epoch's pending batches, as (batch number, index) keys."""

    def __init__(self) -> None:
        self.keys: list[Any] = []

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self.keys))

    def __len__(self) -> int:
        return len(self.keys)


class ResilientLoader:
    """Iterate a map-style ``DataLoader`` so that a crashed or hung worker loses only the batch it was making.

    Args:
        loader: A ``torch.utils.data.DataLoader`` over a map-style dataset (for example
            :class:`gpudecode.data.ClipDataset`). All its settings are kept: workers, multiprocessing context,
            sampler or batch sampler (a ``DistributedSampler`` included; call its ``set_epoch`` as usual), collate
            function, pinning, prefetching, persistent workers, ``in_order``.
        batch_timeout_s: A worker that spends longer than this on one batch is killed and the batch is lost
            (``None``: wait forever, unless the loader has a ``timeout``, which is then used).
        max_lost_batches: Batches an epoch may lose before :class:`~gpudecode.WorkerCrashError` ends it
            (``None``: no limit).
        on_error: ``"raise"`` (default): an exception from the dataset ends the epoch, as with a plain
            ``DataLoader``. ``"skip"``: items raising a gpudecode error about their data (damaged, missing or
            unsuitable media) are left out of their batch and recorded; ``CudaUnavailableError`` (the machine's
            set-up) and other exceptions (bugs) still raise.

    Iterating yields the batches of the loader's sampler, in its order (as a plain loader would, ``in_order=False``
    aside), minus the lost batches (and, with ``on_error="skip"``, the failing items). Each loss is recorded in
    :attr:`lost` (reset at every epoch) and reported with a ``RuntimeWarning``. CUDA tensors made in workers are
    copied into this process (a worker's memory goes when the worker goes, and workers are restarted after a
    crash). With ``num_workers=0`` decoding runs in this process, where a crash cannot be contained; only
    ``on_error`` applies then.

    Raises:
        InvalidArgumentError: The loader is not a ``DataLoader`` over a map-style dataset, or an argument is invalid.
        WorkerCrashError: (While iterating) more than ``max_lost_batches`` batches were lost in one epoch, or workers
            kept dying without making any batch.
    """

    def __init__(
        self,
        loader: DataLoader,
        *,
        batch_timeout_s: float | None = None,
        max_lost_batches: int | None = 16,
        on_error: str = "raise",
    ) -> None:
        if not isinstance(loader, DataLoader):
            raise InvalidArgumentError(f"Invalid loader ({type(loader).__name__}). Pass a torch.utils.data.DataLoader.")
        if isinstance(loader.dataset, IterableDataset):
            raise InvalidArgumentError(
                "Invalid loader (its dataset is an IterableDataset). ResilientLoader needs a "
                "map-style dataset, whose batches can be named and re-made."
            )
        if batch_timeout_s is None and loader.timeout > 0:
            batch_timeout_s = float(loader.timeout)
        if batch_timeout_s is not None and not batch_timeout_s > 0:
            raise InvalidArgumentError(f"Invalid batch_timeout_s ({batch_timeout_s}). Supported values: > 0 or None.")
        if max_lost_batches is not None and max_lost_batches < 0:
            raise InvalidArgumentError(
                f"Invalid max_lost_batches ({max_lost_batches}). Supported values: >= 0 or None."
            )
        if on_error not in _ON_ERROR:
            raise invalid_choice("on_error", on_error, _ON_ERROR)
        self.loader = loader
        self.batch_timeout_s = batch_timeout_s
        self.max_lost_batches = max_lost_batches
        self.on_error = on_error
        self.lost: list[LostItems] = []
        """Items lost in the current (or last) epoch."""
        workers = max(loader.num_workers, 1)
        self._table = torch.full((workers, 3), -1, dtype=torch.int64).share_memory_()
        self._keys = _EpochKeys()
        self._inner: DataLoader | None = None

    def __len__(self) -> int:
        """Number of batches per epoch of the wrapped loader (lost ones included)."""
        return len(self.loader)

    def _make_inner(self) -> DataLoader:
        lo = self.loader
        auto = lo.batch_sampler is not None
        return DataLoader(
            _TrackedDataset(lo.dataset, self._table, self.on_error == "skip"),
            batch_size=1 if auto else None,  # 1: the default DataLoader requires beside a batch_sampler
            sampler=None if auto else self._keys,
            batch_sampler=self._keys if auto else None,
            num_workers=lo.num_workers,
            collate_fn=_TaggedCollate(lo.collate_fn, self._table),
            pin_memory=lo.pin_memory,
            timeout=_POLL_S if lo.num_workers else 0,
            worker_init_fn=lo.worker_init_fn,
            multiprocessing_context=lo.multiprocessing_context,
            generator=lo.generator,
            prefetch_factor=lo.prefetch_factor,
            persistent_workers=lo.persistent_workers,
            pin_memory_device=lo.pin_memory_device,
            in_order=lo.in_order,
        )

    def _start(self) -> Iterator[Any] | None:
        """A fresh iterator of the inner loader, or ``None`` when a worker died while it was being set up."""
        self._table.fill_(-1)
        if self._inner is None:
            self._inner = self._make_inner()
        try:
            it = iter(self._inner)
            # torch's SIGCHLD handler would raise a worker's death at an arbitrary point of the caller's loop; we
            # notice deaths ourselves while waiting for data, so take this iterator's pids out of its bookkeeping.
            withdraw = getattr(torch.utils.data._utils.signal_handling, "_remove_worker_pids", None)
            if withdraw is not None and getattr(it, "_worker_pids_set", False):
                withdraw(id(it))
                it._worker_pids_set = False  # type: ignore[attr-defined]
        except RuntimeError as exc:  # that handler fired before the pids were withdrawn: a worker died starting
            if _DEAD_WORKERS.search(str(exc)) is None:
                raise
            self._inner = None
            return None
        return it

    def _abandon(self, it: Iterator[Any]) -> None:
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self._inner = None  # fresh workers (and queues) for what is left

    def _lose(self, number: int, indices: tuple[int, ...], reason: str) -> None:
        self.lost.append(LostItems(number, indices, reason))
        warnings.warn(
            f"gpudecode.data.ResilientLoader lost batch {number} (dataset indices {list(indices)}): {reason}",
            RuntimeWarning,
            stacklevel=3,
        )
        lost_batches = len({item.batch_number for item in self.lost})
        if self.max_lost_batches is not None and lost_batches > self.max_lost_batches:
            raise WorkerCrashError(
                f"Too many lost batches ({lost_batches}) in one epoch; max_lost_batches is "
                f"{self.max_lost_batches}. Last: batch {number}, {reason}."
            )

    def _dead_workers(self, it: Iterator[Any], exc: BaseException) -> set[int]:
        """Pids of the workers behind ``exc``.

        torch's message names them; a batch lost in transit because its sender died (``ConnectionResetError`` and
        the like) names nobody, so look for a dead worker for a short while.
        """
        if isinstance(exc, RuntimeError):
            match = _DEAD_WORKERS.search(str(exc))
            return {int(p) for p in match.group(1).replace(" ", "").split(",") if p} if match else set()
        workers = list(getattr(it, "_workers", ()))
        deadline = time.monotonic() + 2 * _POLL_S
        while True:
            dead = {w.pid for w in workers if not w.is_alive()}
            if dead or time.monotonic() > deadline:
                return dead
            time.sleep(0.05)

    def _exit_reason(self, it: Iterator[Any], pid: int) -> str:
        for w in getattr(it, "_workers", ()):
            if w.pid == pid and w.exitcode is not None:
                if w.exitcode < 0:
                    try:
                        return f"worker {pid} was killed by {signal.Signals(-w.exitcode).name}"
                    except ValueError:
                        return f"worker {pid} was killed by signal {-w.exitcode}"
                return f"worker {pid} exited with code {w.exitcode}"
        return f"worker {pid} exited unexpectedly"

    def _kill_overdue(self, killed: dict[int, str]) -> None:
        if self.batch_timeout_s is None:
            return
        now = time.monotonic_ns()
        for pid, number, start_ns in self._table.tolist():
            if number >= 0 and pid > 0 and now - start_ns > self.batch_timeout_s * 1e9 and number not in killed:
                killed[number] = f"batch took longer than {self.batch_timeout_s:g} s; worker {pid} was killed"
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _round(self, it: Iterator[Any], pending: dict[int, list[int]]) -> Generator[Any, None, bool]:
        """Deliver batches from one set of workers until the epoch ends or a worker dies.

        Returns whether any batch was delivered or lost (else the round was fruitless).
        """
        killed: dict[int, str] = {}  # batch number -> why its worker was killed
        progress = False
        try:
            while True:
                try:
                    number, batch, failures = next(it)
                except StopIteration:
                    break
                except (RuntimeError, OSError, EOFError) as exc:
                    if isinstance(exc, RuntimeError) and str(exc).startswith("DataLoader timed out"):
                        self._kill_overdue(killed)
                        continue
                    dead = self._dead_workers(it, exc)
                    if not dead:
                        raise
                    for pid, held, _ in self._table.tolist():
                        if pid in dead and held in pending:
                            reason = killed.get(held) or self._exit_reason(it, pid)
                            self._lose(held, tuple(pending.pop(held)), reason)
                            progress = True
                    break
                progress = True
                pending.pop(number, None)
                if failures:
                    self._lose(number, tuple(index for index, _ in failures), "; ".join(t for _, t in failures))
                if batch is not None:
                    yield _own_cuda(batch) if self.loader.num_workers else batch
        finally:
            if pending:
                self._abandon(it)
        return progress

    def __iter__(self) -> Iterator[Any]:
        """Yield the epoch's batches, skipping those lost to crashed or hung workers (see :attr:`lost`)."""
        self.lost = []
        lo = self.loader
        if lo.num_workers == 0 and self.on_error == "raise":
            yield from lo  # nothing to contain: decoding runs in this process
            return
        auto = lo.batch_sampler is not None
        batches: list[list[int]] = [list(b) for b in lo.batch_sampler] if auto else [[i] for i in lo.sampler]
        pending = dict(enumerate(batches))
        fruitless = 0
        while pending:
            self._keys.keys = (
                [[(n, i) for i in b] for n, b in pending.items()] if auto else [(n, b[0]) for n, b in pending.items()]
            )
            it = self._start()
            progress = (yield from self._round(it, pending)) if it is not None else False  # None: died starting
            if pending:
                fruitless = 0 if progress else fruitless + 1
                if fruitless >= _MAX_FRUITLESS_RESTARTS:
                    raise WorkerCrashError(
                        f"DataLoader workers died {fruitless} times in a row without making a "
                        "batch (a crash in worker_init_fn or outside the dataset?)."
                    )
