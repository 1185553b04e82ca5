"""The NVDEC backend and its test fake against the real PyNvVideoCodec 2.2.4, without a GPU.

The oracle is the compiled module itself, loaded against a stub ``libcuda.so.1`` (``nvc_api.py``). Its description
is kept in ``nvc_api_2.2.4.json`` (the fake is built from that file); the first test checks the file against the
installed module, so neither the fake nor the backend can drift from the real API unnoticed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from fake_nvc import CAPS_KEYS, REAL_API, PacketData, make_module
from nvc_api import compiled_module, describe

from gpudecode import VideoDecoder
from gpudecode._backends import _nvc, _nvdec
from gpudecode._backends._nvdec import Modules, create_nvdec_backend

SNAPSHOT = Path(__file__).parent / "nvc_api_2.2.4.json"


def _no_conversion(**kwargs: object) -> None:
    raise AssertionError("nothing is converted here")


def test_snapshot_is_the_installed_module():
    if compiled_module() is None:
        pytest.skip("PyNvVideoCodec is not installed (it comes with the gpu extra)")
    if shutil.which("nm") is None or (shutil.which("cc") or shutil.which("gcc")) is None:
        pytest.skip("needs nm and a C compiler to build the stub libcuda")
    from importlib.metadata import version

    installed = version("PyNvVideoCodec")  # importing the package itself needs the NVIDIA driver
    if installed != "2.2.4":
        pytest.skip(f"the snapshot describes 2.2.4; installed is {installed}")
    assert describe() == json.loads(SNAPSHOT.read_text())


def test_backend_names_exist_in_the_real_module():
    enums = REAL_API["enums"]
    assert set(_nvdec.NVDEC_CODECS.values()) <= set(enums["cudaVideoCodec"])
    assert _nvdec.CHROMA_420 in enums["cudaVideoChromaFormat"]
    assert "NATIVE" in enums["OutputColorType"]
    for key in (
        _nvdec.CAPS_SUPPORTED,
        _nvdec.CAPS_WIDTH_MAX,
        _nvdec.CAPS_HEIGHT_MAX,
        _nvdec.CAPS_WIDTH_MIN,
        _nvdec.CAPS_HEIGHT_MIN,
    ):
        assert REAL_API["binary_strings"][key] > 0, key
    assert {"Decode", "setReconfigParams"} <= set(REAL_API["classes"]["PyNvDecoder"])
    assert {"getPTS", "GetPtrToPlane", "cuda", "format"} <= set(REAL_API["classes"]["DecodedFrame"])
    assert {"bsl_data", "bsl", "pts"} <= set(REAL_API["classes"]["PacketData"])
    assert REAL_API["methods"]["PyNvDecoder.setReconfigParams"] == [["width", "height"]]


def test_backend_calls_bind_to_a_real_overload(video):
    """Every keyword set the backend passes binds to one of the real overloads (pybind11 refuses the rest)."""
    nvc = make_module()
    dec = VideoDecoder(video("h264_bframes"))
    mods = Modules(nvc=nvc, convert=_no_conversion, cuda_ok=False)
    _nvdec.decoder_cache.clear()
    backend = create_nvdec_backend(
        torch.device("cpu"), dec._session.pipe.demuxer.stream, 8, dec._state.color, modules=mods
    )
    backend.close()
    _nvdec.decoder_cache.clear()
    created = nvc.created[0].kwargs
    assert any(set(created) <= set(o) for o in REAL_API["functions"]["CreateDecoder"]), created
    assert "enableasyncallocations" not in created  # with context/stream 0 the real constructor throws
    for call in nvc.caps_calls:
        assert set(call) <= set(REAL_API["functions"]["GetDecoderCaps"][0]), call


def test_fake_refuses_what_the_real_module_refuses():
    for probe, outcome in REAL_API["packet_setters"].items():
        name, value = probe.split("=", 1)
        pd = PacketData()
        try:
            setattr(pd, name, eval(value))
            got = "ok"
        except TypeError:
            got = "TypeError"
        assert got == outcome, probe
    with pytest.raises(AttributeError, match="bsl_size"):
        PacketData().bsl_size = 3  # not a property of the real PacketData
    nvc = make_module()
    with pytest.raises(TypeError, match="incompatible function arguments"):
        nvc.CreateDecoder(gpuid=0, maxWidth=1920)
    assert not hasattr(nvc.cudaVideoChromaFormat, "YUV420")
    assert set(CAPS_KEYS) >= {"supported", "width_max", "height_max"} and "max_width" not in CAPS_KEYS


def test_a_driver_exit_inside_create_decoder_is_contained_by_the_probe(tmp_path):
    """The real CreateDecoder, its driver calls failing, prints [FATAL] and calls exit(1): in the probe process
    that becomes NvdecUnavailable with the reason, and this process lives on."""
    module = compiled_module()
    if module is None or shutil.which("nm") is None or (shutil.which("cc") or shutil.which("gcc")) is None:
        pytest.skip("needs the installed PyNvVideoCodec, nm and a C compiler")
    from nvc_api import build_stub_libcuda

    build_stub_libcuda(module, tmp_path)
    code = (
        f"import importlib.util as u; s = u.spec_from_file_location('_PyNvVideoCodec', {module!r}); "
        "n = u.module_from_spec(s); s.loader.exec_module(n); "
        "n.CreateDecoder(gpuid=0, codec=n.cudaVideoCodec.H264, usedevicememory=True, maxwidth=64, maxheight=64); "
        "print('gpudecode-probe-ok')"
    )
    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path))
    with pytest.raises(_nvdec.NvdecUnavailable, match=r"probe process \(exit status 1\): .*CUDA_ERROR_NO_DEVICE"):
        _nvc.probe_decoder_creation(0, code=code, env=env)
    ok = "print('gpudecode-probe-ok')"
    _nvc.probe_decoder_creation(0, code=ok)  # a child that succeeds passes
