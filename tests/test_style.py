"""The style checks CI enforces: ``ruff check`` (lint) and ``ruff format --check`` (the formatter owns the layout)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ruff installed beside this Python (the test extra's), not whichever one is first on PATH."""
    if importlib.util.find_spec("ruff") is None:
        pytest.fail("ruff (a test dependency) is not installed")
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")], ids=["lint", "format"])
def test_ruff(args):
    run = _ruff(*args)
    assert run.returncode == 0, run.stdout + run.stderr
