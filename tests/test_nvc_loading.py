"""Loading the GPU dependencies (``_backends._nvc``) without a GPU: each reason NVDEC cannot be used, word for word,
and what a successful load hands the backend. CuPy is tests/fake_cupy.py (the real kernel source, built for the
host); PyNvVideoCodec a stand-in module; the probe process a recorded ``subprocess.run``. Found by mutation testing
(issue 11): without CUDA the loader stopped at its first line, so nothing after it had a test."""

from __future__ import annotations

import logging
import subprocess
import sys
from types import ModuleType

import pytest
import torch
from fake_cupy import FakeCupy

from gpudecode._backends import _kernels, _nvc
from gpudecode._backends._nvc import NvdecUnavailable


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(_nvc, "_LOAD_FAILURES", {})
    monkeypatch.setattr(_nvc, "_PROBED", set())
    monkeypatch.setattr(_kernels, "_MODULES", {})


class _FailingImport:
    """A meta-path finder that makes importing ``name`` raise ``exc``."""

    def __init__(self, name: str, exc: BaseException) -> None:
        self.name, self.exc = name, exc
        self.logger_disabled_during_import: bool | None = None

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name:
            self.logger_disabled_during_import = logging.getLogger("PyNvVideoCodec").disabled
            raise self.exc
        return None


def _gpu_present(monkeypatch, cupy: object | None = None, nvc: object | None = None) -> list[int]:
    """CUDA reported, the given modules importable; returns the devices the probe was asked for."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "cupy", cupy if cupy is not None else FakeCupy())
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", nvc if nvc is not None else ModuleType("PyNvVideoCodec"))
    probed: list[int] = []
    monkeypatch.setattr(_nvc, "probe_decoder_creation", probed.append)
    return probed


def test_no_cuda_is_a_reason_given_once_per_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    msg = r"torch reports no CUDA device \(CPU-only torch build, or no NVIDIA driver\)"
    with pytest.raises(NvdecUnavailable, match=f"^{msg}$"):
        _nvc.load_modules(3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: pytest.fail("asked again"))
    with pytest.raises(NvdecUnavailable, match=f"^{msg}$"):
        _nvc.load_modules(3)  # remembered, not retried


def test_load_modules_loads_for_its_device(monkeypatch):
    asked: list[int] = []
    monkeypatch.setattr(_nvc, "_import_modules", lambda i: asked.append(i) or "modules")
    assert _nvc.load_modules(5) == "modules" and asked == [5]


def test_missing_packages_are_named(monkeypatch):
    _gpu_present(monkeypatch)
    monkeypatch.setitem(sys.modules, "cupy", None)  # import fails with ImportError
    with pytest.raises(NvdecUnavailable, match=r"^CuPy is not installed \(.*cupy.*\); install gpudecode\[gpu\]$"):
        _nvc.load_modules(0)
    _gpu_present(monkeypatch)
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", None)
    with pytest.raises(NvdecUnavailable, match=r"^PyNvVideoCodec is not installed \(.*\); install gpudecode\[gpu\]$"):
        _nvc.load_modules(1)


@pytest.mark.parametrize(
    ("exc", "said"),
    [
        (
            RuntimeError("libnvidia-encode.so.1: cannot open shared object file\nsecond line"),
            "libnvidia-encode.so.1: cannot open shared object file",
        ),
        (OSError(), "OSError"),
    ],
)
@pytest.mark.parametrize("disabled_before", [False, True])
def test_a_driver_that_fails_to_load_is_one_line_and_the_nvc_logger_is_quiet_meanwhile(
    monkeypatch, exc, said, disabled_before
):
    _gpu_present(monkeypatch)
    monkeypatch.delitem(sys.modules, "PyNvVideoCodec")
    finder = _FailingImport("PyNvVideoCodec", exc)
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    nvc_logger = logging.getLogger("PyNvVideoCodec")
    monkeypatch.setattr(nvc_logger, "disabled", disabled_before)
    want = (
        f"PyNvVideoCodec could not load the NVIDIA video driver ({said}); in containers "
        "set NVIDIA_DRIVER_CAPABILITIES=compute,utility,video"
    )
    with pytest.raises(NvdecUnavailable) as info:
        _nvc.load_modules(0)
    assert str(info.value) == want
    assert finder.logger_disabled_during_import is True and nvc_logger.disabled is disabled_before


def test_a_successful_load_probes_its_device_and_hands_over_the_kernels(monkeypatch):
    cupy, nvc = FakeCupy(), ModuleType("PyNvVideoCodec")
    probed = _gpu_present(monkeypatch, cupy, nvc)
    modules = _nvc.load_modules(2)
    assert probed == [2] and modules.nvc is nvc
    assert isinstance(modules.convert, _kernels.Yuv420ToRgb) and modules.resample == modules.convert.resample
    assert modules.convert._cp is cupy and modules.convert._device_index == 2
    assert cupy.made_on[0] == ("module", 2)


def test_a_kernel_that_does_not_compile_is_a_reason(monkeypatch):
    class Broken(FakeCupy):
        def RawModule(self, *, code: str, options: tuple[str, ...] = ()):
            raise RuntimeError("nvrtc: boom")

    _gpu_present(monkeypatch, Broken())
    with pytest.raises(NvdecUnavailable, match=r"^the CUDA color kernel could not be compiled: nvrtc: boom$"):
        _nvc.load_modules(0)


def _recorded_run(monkeypatch, stdout: str = "", stderr: str = "", returncode: int = 0, exc: Exception | None = None):
    calls: list[tuple[list[str], dict]] = []

    def run(cmd, **kwargs):
        calls.append((cmd, kwargs))
        if exc is not None:
            raise exc
        return subprocess.CompletedProcess(cmd, returncode, stdout, stderr)

    monkeypatch.setattr(_nvc.subprocess, "run", run)
    return calls


def test_the_probe_runs_once_per_device_with_its_index(monkeypatch):
    calls = _recorded_run(monkeypatch, stdout="gpudecode-probe-ok\n")
    _nvc.probe_decoder_creation(1)
    _nvc.probe_decoder_creation(1)
    _nvc.probe_decoder_creation(0)
    assert [c[0] for c in calls] == [[sys.executable, "-c", _nvc._PROBE_CODE.format(index=i)] for i in (1, 0)]
    assert all(c[1]["timeout"] == 120 and c[1]["env"] is None for c in calls)
    assert {0, 1} == _nvc._PROBED


def test_a_probe_with_code_of_its_own_is_never_remembered(monkeypatch):
    calls = _recorded_run(monkeypatch, stdout="gpudecode-probe-ok")
    _nvc._PROBED.add(4)
    _nvc.probe_decoder_creation(4, code="print('gpudecode-probe-ok')")
    _nvc.probe_decoder_creation(5, code="print('gpudecode-probe-ok')")
    assert [c[0][2] for c in calls] == ["print('gpudecode-probe-ok')"] * 2 and {4} == _nvc._PROBED


@pytest.mark.parametrize(
    ("stdout", "stderr", "last"),
    [
        ("", "", "no output"),
        ("[FATAL] cuvidCreateDecoder failed\n\n", "a warning\n", "[FATAL] cuvidCreateDecoder failed"),
        ("x" * 400, "", "x" * 300),
    ],
)
def test_a_failed_probe_says_its_exit_status_and_last_line(monkeypatch, stdout, stderr, last):
    _recorded_run(monkeypatch, stdout=stdout, stderr=stderr, returncode=1)
    with pytest.raises(NvdecUnavailable) as info:
        _nvc.probe_decoder_creation(0)
    assert str(info.value) == f"creating an NVDEC decoder failed in a probe process (exit status 1): {last}"
    assert set() == _nvc._PROBED


def test_a_probe_that_cannot_start_is_a_reason(monkeypatch):
    _recorded_run(monkeypatch, exc=OSError("no python"))
    with pytest.raises(NvdecUnavailable, match=r"^the NVDEC probe process could not run \(no python\)$"):
        _nvc.probe_decoder_creation(0)
