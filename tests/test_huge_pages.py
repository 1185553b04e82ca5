"""Large CPU frame batches and transparent huge pages (issue 15): asked for only where the kernel has them free.

The oracles are the kernel's: ``/proc/self/smaps`` says whether a mapping was advised for huge pages (``hg`` among
its VmFlags) and how much of it huge pages back; the free-block counts are worked out by hand from the buddy
allocator's rule (a block of order ``k`` is ``2**k`` pages).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import gpudecode._memory as memory
from gpudecode._memory import free_huge_pages

# /proc/buddyinfo of the 2-core CI machine with a full page cache (orders 0-10 of 4 KiB pages).
BUDDYINFO = """\
Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3
Node 0, zone    DMA32    525    517    267     34     21      6      1      6      5      2     18
Node 0, zone   Normal  42488  35458  24985  17809  16962   8694   4834   1820     78     57     28
"""
# By hand, 2 MiB huge pages (order 9): DMA 1 + 3*2 = 7, DMA32 2 + 18*2 = 38, Normal 57 + 28*2 = 113.
FREE_2M = 7 + 38 + 113


def test_free_huge_pages_counts_blocks_of_a_huge_pages_order_and_above():
    assert free_huge_pages(BUDDYINFO, 2 << 20, 4096) == FREE_2M
    # 16 KiB base pages (order 7 for 2 MiB): DMA 1*2 + 1*4 + 3*8, DMA32 6 + 5*2 + 2*4 + 18*8, Normal 1820 + 78*2 ...
    dma, dma32, normal = 2 + 4 + 24, 6 + 10 + 8 + 144, 1820 + 156 + 228 + 224
    assert free_huge_pages(BUDDYINFO, 2 << 20, 16384) == dma + dma32 + normal
    # 64 KiB pages, 512 MiB huge pages (order 13), two nodes with 14 orders each.
    arm = "Node 0, zone   Normal " + " 9" * 13 + " 5\nNode 1, zone   Normal " + " 0" * 13 + " 2\n"
    assert free_huge_pages(arm, 512 << 20, 65536) == 7
    assert free_huge_pages("", 2 << 20, 4096) == 0


@pytest.fixture
def buddyinfo(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "buddyinfo"
    path.write_text(BUDDYINFO)
    monkeypatch.setattr(memory, "_BUDDYINFO", path)
    monkeypatch.setattr(memory, "_HUGE_PAGE", 2 << 20)
    return path


def test_huge_pages_are_asked_for_only_when_enough_are_free(buddyinfo, monkeypatch):
    monkeypatch.setattr(memory, "_STALLS", True)
    assert memory._huge_pages_ready(FREE_2M * (2 << 20))
    assert not memory._huge_pages_ready(FREE_2M * (2 << 20) + 1)
    buddyinfo.unlink()  # no /proc: nothing says no
    assert memory._huge_pages_ready(1 << 40)


def test_a_kernel_that_does_not_compact_on_the_spot_is_always_asked(buddyinfo, monkeypatch):
    monkeypatch.setattr(memory, "_STALLS", False)
    assert memory._huge_pages_ready(1 << 40)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("always defer defer+madvise [madvise] never\n", "madvise"),
        ("[always] madvise never\n", "always"),
        ("2097152\n", "2097152"),
        ("", "fallback"),
    ],
)
def test_thp_settings_read_the_selected_value(tmp_path, monkeypatch, text, expected):
    (tmp_path / "defrag").write_text(text)
    monkeypatch.setattr(memory, "_THP", tmp_path)
    assert memory._thp_setting("defrag", "fallback") == expected
    assert memory._thp_setting("missing", "fallback") == "fallback"


def _mapping(ptr: int) -> tuple[list[str], int]:
    """VmFlags and AnonHugePages (KiB) of the mapping that holds ``ptr`` (/proc/self/smaps)."""
    flags, huge_kb, inside = [], 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= ptr < hi
        elif inside and line.startswith("AnonHugePages:"):
            huge_kb = int(line.split()[1])
        elif inside and line.startswith("VmFlags:"):
            flags = line.split()[1:]
    return flags, huge_kb


def _fresh_batch(ready: bool, pool_mb: int) -> tuple[list[str], int]:
    """In a fresh process (memory malloc hands back after earlier frees is already backed, so only freshly mapped
    memory shows the effect): the smaps entry of a 25 MB batch, as a decode call allocates it, once written."""
    code = f"""
import sys, torch
sys.path.insert(0, {str(Path(__file__).parent)!r})
import gpudecode._memory as memory
from test_huge_pages import _mapping
memory._huge_pages_ready = lambda nbytes: {ready}
out = memory.new_frames((4, 1080, 1920, 3), torch.device("cpu"))
out.fill_(7)  # first touch
flags, huge_kb = _mapping((out.data_ptr() + (2 << 20) - 1) & ~((2 << 20) - 1))
print(",".join(flags), huge_kb)
"""
    env = dict(os.environ, GPUDECODE_FRAME_POOL_MB=str(pool_mb))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    flags, huge_kb = r.stdout.split()
    return flags.split(","), int(huge_kb)


def _thp_mode() -> str:
    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not sys.platform.startswith("linux") or not mode.exists() or "[never]" in mode.read_text():
        pytest.skip("this kernel offers no transparent huge pages")
    return mode.read_text()


@pytest.mark.parametrize("pool_mb", [512, 0], ids=["pooled", "not pooled"])
def test_large_cpu_outputs_are_backed_by_huge_pages_when_free(pool_mb):
    """Where the kernel has huge pages free, a fresh large frame batch asks for them and gets them (fewer faults)."""
    _thp_mode()
    flags, huge_kb = _fresh_batch(True, pool_mb)
    assert "hg" in flags
    assert huge_kb >= 16 * 1024  # madvise split the mapping at the first whole huge page


@pytest.mark.parametrize("pool_mb", [512, 0], ids=["pooled", "not pooled"])
def test_large_cpu_outputs_do_not_ask_for_huge_pages_that_are_not_free(pool_mb):
    """Where none are free, the batch asks for none: the first write would stall on the kernel compacting memory.
    Neither gpudecode nor NumPy (which advises its own large arrays) may advise the batch's memory."""
    mode = _thp_mode()
    flags, huge_kb = _fresh_batch(False, pool_mb)
    assert "hg" not in flags
    if "[madvise]" in mode:
        assert huge_kb == 0
