"""A CuPy stand-in that runs RawModule kernels on the host (tests only).

``RawModule(code=...)`` compiles the code it is given as C++ through tests/cuda_host_shim.h, and each kernel is
called the way ``cuLaunchKernel`` calls it: one pointer per parameter, each read as the parameter's own C type.
CuPy packs a NumPy scalar argument as its dtype's bytes and checks nothing against the kernel's parameters, so a
launcher that passes an ``int32`` where the kernel takes a ``long long`` reads garbage on a GPU; this stand-in
refuses such a launch instead. It also refuses grids and blocks a GPU would refuse, and records the device and
stream current at each launch. ``tests/test_kernel_launcher.py`` checks its API against the real CuPy.
"""

from __future__ import annotations

import ctypes
import hashlib
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from kernel_host import build_host_library

_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(')
_BUILT: dict[str, tuple[ctypes.CDLL, tuple[str, ...]]] = {}  # code digest -> library, kernel names

_PRELUDE = """
#include "cuda_host_shim.h"
#include <cstddef>
#include <type_traits>
#include <utility>
#include "kernel.cu"

template <typename... A, std::size_t... I>
static void gd_call(void (*k)(A...), void** args, std::index_sequence<I...>) {
    k(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}
template <typename... A>
static void gd_launch(void (*k)(A...), const unsigned* g, const unsigned* b, void** args) {
    gridDim = {g[0], g[1], g[2]};
    blockDim = {b[0], b[1], b[2]};
    for (unsigned z = 0; z < g[2]; ++z)
        for (unsigned y = 0; y < g[1]; ++y)
            for (unsigned x = 0; x < g[0]; ++x)
                for (unsigned tz = 0; tz < b[2]; ++tz)
                    for (unsigned ty = 0; ty < b[1]; ++ty)
                        for (unsigned tx = 0; tx < b[0]; ++tx) {
                            blockIdx = {x, y, z};
                            threadIdx = {tx, ty, tz};
                            gd_call(k, args, std::index_sequence_for<A...>{});
                        }
}
template <typename T>
static char gd_kind() {
    return std::is_pointer<T>::value ? 'p' : std::is_floating_point<T>::value ? 'f' : 'i';
}
template <typename... A>
static int gd_signature(void (*)(A...), char* kinds, int* sizes) {
    int n = 0;
    ((kinds[n] = gd_kind<A>(), sizes[n] = (int)sizeof(A), ++n), ...);
    return n;
}
"""

_EXPORT = """
extern "C" void gd_launch_{0}(const unsigned* g, const unsigned* b, void** a) {{ gd_launch(&{0}, g, b, a); }}
extern "C" int gd_signature_{0}(char* kinds, int* sizes) {{ return gd_signature(&{0}, kinds, sizes); }}
"""


def _build(code: str) -> tuple[ctypes.CDLL, tuple[str, ...]]:
    """Compile ``code`` for the host once per distinct source; return the library and its kernels' names."""
    digest = hashlib.sha256(code.encode()).hexdigest()
    if digest not in _BUILT:
        names = tuple(_KERNEL.findall(code))
        with tempfile.TemporaryDirectory(prefix="fake-cupy-") as tmp:
            work = Path(tmp)
            (work / "kernel.cu").write_text(code)  # the code given, not kernels/'s: launch.cpp's folder comes first
            (work / "launch.cpp").write_text(_PRELUDE + "".join(_EXPORT.format(n) for n in names))
            _BUILT[digest] = (build_host_library(work / "launch.cpp"), names)
    return _BUILT[digest]


@dataclass
class Launch:
    """One kernel launch as the fake saw it."""

    kernel: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    device: int | None
    stream: int | None


@dataclass
class FakeCupy:
    """The parts of the ``cupy`` module gpudecode's kernel launcher uses; ``from_external=False`` imitates CuPy 13."""

    from_external: bool = True
    compiled: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (code, options) per RawModule
    launches: list[Launch] = field(default_factory=list)
    # (what, the device current then) for each module, kernel and stream made
    made_on: list[tuple[str, int | None]] = field(default_factory=list)
    devices: list[int] = field(default_factory=list)  # the stack of current devices
    streams: list[int] = field(default_factory=list)  # the stack of current streams

    def __post_init__(self) -> None:
        self.cuda = _Cuda(self)

    def RawModule(self, *, code: str, options: tuple[str, ...] = ()) -> _Module:
        """Compile ``code`` (on the host)."""
        self.compiled.append((code, tuple(options)))
        self.made_on.append(("module", self.devices[-1] if self.devices else None))
        return _Module(self, *_build(code))


class _Cuda:
    def __init__(self, cp: FakeCupy) -> None:
        self._cp = cp
        self.Stream = _StreamClass(cp)
        if not cp.from_external:
            self.ExternalStream = self._external

    @contextmanager
    def Device(self, index: int):
        self._cp.devices.append(index)
        try:
            yield
        finally:
            self._cp.devices.pop()

    def _external(self, ptr: int, device_id: int = -1) -> _Stream:
        self._cp.made_on.append(("stream", device_id))
        return _Stream(self._cp, ptr)


class _StreamClass:
    def __init__(self, cp: FakeCupy) -> None:
        self._cp = cp
        if cp.from_external:
            self.from_external = self._from_external

    def _from_external(self, obj: object) -> _Stream:
        version, ptr = obj.__cuda_stream__()  # type: ignore[attr-defined]
        if version != 0 or not isinstance(ptr, int):
            raise TypeError("__cuda_stream__ must return (0, handle)")
        self._cp.made_on.append(("stream", self._cp.devices[-1] if self._cp.devices else None))
        return _Stream(self._cp, ptr)


class _Stream:
    def __init__(self, cp: FakeCupy, ptr: int) -> None:
        self._cp, self.ptr = cp, ptr

    def __enter__(self) -> _Stream:
        self._cp.streams.append(self.ptr)
        return self

    def __exit__(self, *exc: object) -> None:
        self._cp.streams.pop()


class _Module:
    def __init__(self, cp: FakeCupy, lib: ctypes.CDLL, names: tuple[str, ...]) -> None:
        self._cp, self._lib, self._names = cp, lib, names

    def get_function(self, name: str) -> _Kernel:
        if name not in self._names:
            raise KeyError(f"no kernel {name!r} in the module")
        self._cp.made_on.append(("kernel", self._cp.devices[-1] if self._cp.devices else None))
        return _Kernel(self._cp, self._lib, name)


def _dims(v: tuple[int, ...], what: str) -> tuple[int, int, int]:
    if not isinstance(v, tuple) or not 1 <= len(v) <= 3 or not all(isinstance(x, int) and x >= 1 for x in v):
        raise ValueError(f"{what} must be a tuple of 1 to 3 positive ints, not {v!r}")
    return (*v, *(1,) * (3 - len(v)))  # type: ignore[return-value]


class _Kernel:
    def __init__(self, cp: FakeCupy, lib: ctypes.CDLL, name: str) -> None:
        self._cp, self.name = cp, name
        kinds, sizes = ctypes.create_string_buffer(64), (ctypes.c_int * 64)()
        n = getattr(lib, f"gd_signature_{name}")(kinds, sizes)
        self.signature = [(kinds.raw[i : i + 1].decode(), sizes[i]) for i in range(n)]
        self._launch = getattr(lib, f"gd_launch_{name}")
        self._launch.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]

    def _check(self, args: tuple[object, ...]) -> None:
        if len(args) != len(self.signature):
            raise TypeError(f"{self.name} takes {len(self.signature)} arguments, got {len(args)}")
        for i, (arg, (kind, size)) in enumerate(zip(args, self.signature, strict=True)):
            if not isinstance(arg, np.generic):
                raise TypeError(f"{self.name} argument {i}: pass NumPy scalars, not {type(arg).__name__}")
            kinds = {"f": "f", "p": "u", "i": "iu"}[kind]  # a pointer travels as an unsigned 64-bit integer
            ok = arg.dtype.itemsize == size and arg.dtype.kind in kinds
            if not ok:
                raise TypeError(f"{self.name} argument {i} is {arg.dtype} but the kernel takes a {size}-byte {kind}")

    def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[object, ...]) -> None:
        g, b = _dims(grid, "grid"), _dims(block, "block")
        if b[0] * b[1] * b[2] > 1024 or b[2] > 64 or g[1] > 65535 or g[2] > 65535:
            raise ValueError(f"CUDA refuses grid {g} with block {b}")
        self._check(args)
        cp = self._cp
        cp.launches.append(
            Launch(self.name, g, b, cp.devices[-1] if cp.devices else None, cp.streams[-1] if cp.streams else None)
        )
        values = [np.array(a) for a in args]  # each argument's bytes, kept alive for the call
        pointers = (ctypes.c_void_p * len(values))(*(v.ctypes.data for v in values))
        dims = (ctypes.c_uint * 6)(*g, *b)
        self._launch(ctypes.addressof(dims), ctypes.addressof(dims) + 12, pointers)
