"""Describe the real PyNvVideoCodec module's API without a GPU (the oracle for the NVDEC backend and its fake).

``describe()`` builds a stub ``libcuda.so.1`` (every driver symbol the compiled module links, each returning
``CUDA_ERROR_NO_DEVICE``), loads PyNvVideoCodec's compiled pybind11 module against it in a child process, and
returns what the module really offers: enum members and values, each function's keyword names (per overload),
each class's public members, ``PacketData``'s typed setters, and which caps keys the binary contains.

Run as a script (``python tests/nvc_api.py``) to print the description as JSON.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ENUMS = (
    "cudaVideoCodec",
    "cudaVideoChromaFormat",
    "OutputColorType",
    "Pixel_Format",
    "DisplayDecodeLatencyType",
    "cudaVideoSurfaceFormat",
)
FUNCTIONS = ("CreateDecoder", "GetDecoderCaps")
CLASSES = ("PyNvDecoder", "DecodedFrame", "PacketData", "CAIMemoryView")
CAPS_KEYS = (
    "supported",
    "width_max",
    "height_max",
    "width_min",
    "height_min",
    "mb_num_max",
    "num_decoder_engines",
    "max_width",
    "max_height",
    "nMaxWidth",
    "nMaxHeight",
    "is_supported",
    "bIsSupported",
)


def compiled_module() -> str | None:
    """Path of the installed PyNvVideoCodec's CUDA 13 pybind11 module, or ``None`` when it is not installed."""
    spec = importlib.util.find_spec("PyNvVideoCodec")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(glob.glob(os.path.join(spec.submodule_search_locations[0], "PyNvVideoCodec_1*.so")))
    return found[-1] if found else None


def build_stub_libcuda(module: str, folder: Path) -> Path:
    """Compile a ``libcuda.so.1`` defining every ``cu*`` symbol ``module`` links, each failing with 'no device'."""
    nm = subprocess.run(["nm", "-D", "--undefined-only", module], capture_output=True, text=True, check=True).stdout
    symbols = sorted(
        {
            line.split()[-1]
            for line in nm.splitlines()
            if line.split() and line.split()[-1].startswith("cu") and "@" not in line.split()[-1]
        }
    )
    lines = ["/* stub libcuda: every driver call reports CUDA_ERROR_NO_DEVICE (100) */"]
    for name in symbols:
        if name in ("cuGetErrorName", "cuGetErrorString"):
            lines.append(
                f'int {name}(int e, const char **s) {{ static const char m[] = "CUDA_ERROR_NO_DEVICE"; '
                "if (s) *s = m; return 0; }"
            )
        else:
            lines.append(f"int {name}(void) {{ return 100; }}")
    (folder / "stub.c").write_text("\n".join(lines) + "\n")
    cc = shutil.which("cc") or shutil.which("gcc") or "cc"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(folder / "libcuda.so.1"), str(folder / "stub.c")], check=True)
    return folder / "libcuda.so.1"


def _keywords(doc: str, name: str) -> list[list[str]]:
    """Keyword names of each overload in a pybind11 docstring."""
    out = []
    for m in re.finditer(rf"^(?:\d+\. )?{name}\((.*)\) ->", doc, re.MULTILINE):
        params = [p.split(":")[0].strip() for p in m.group(1).split(", ") if ":" in p]
        out.append([p for p in params if p != "self"])
    return out


def _probe_setter(cls: Any, prop: str, value: Any) -> str:
    obj = cls()
    try:
        setattr(obj, prop, value)
    except TypeError:
        return "TypeError"
    return "ok"


def _describe_in_child(module: str) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("_PyNvVideoCodec", module)
    assert spec is not None and spec.loader is not None
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    data = Path(module).read_bytes()
    return {
        "enums": {e: {k: int(v.value) for k, v in getattr(m, e).__members__.items()} for e in ENUMS},
        "functions": {f: _keywords(getattr(m, f).__doc__ or "", f) for f in FUNCTIONS},
        "classes": {c: sorted(x for x in dir(getattr(m, c)) if not x.startswith("_")) for c in CLASSES},
        "methods": {
            "PyNvDecoder.setReconfigParams": _keywords(
                m.PyNvDecoder.setReconfigParams.__doc__ or "", "setReconfigParams"
            )
        },
        "exceptions": {
            e: [b.__name__ for b in getattr(m, e).__mro__] for e in ("PyNvVCException", "PyNvVCExceptionUnsupported")
        },
        "packet_setters": {
            f"{p}={v!r}": _probe_setter(m.PacketData, p, v)
            for p, v in (("pts", 5), ("pts", None), ("pts", 2**63), ("bsl_data", -1), ("bsl", 10), ("bsl_data", 12345))
        },
        "binary_strings": {k: data.count(k.encode() + b"\x00") for k in CAPS_KEYS},
    }


def describe() -> dict[str, Any] | None:
    """The real module's API (see the module docstring); ``None`` when PyNvVideoCodec is not installed."""
    module = compiled_module()
    if module is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        build_stub_libcuda(module, Path(tmp))
        env = dict(os.environ, LD_LIBRARY_PATH=f"{tmp}:{os.environ.get('LD_LIBRARY_PATH', '')}")
        out = subprocess.run(
            [sys.executable, __file__, "--child", module], capture_output=True, text=True, env=env, timeout=120
        )
    if out.returncode != 0:
        raise RuntimeError(f"loading {module} against the stub libcuda failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(_describe_in_child(sys.argv[2])))
    else:
        print(json.dumps(describe(), indent=1, sort_keys=True))
