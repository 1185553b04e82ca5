#!/usr/bin/env bash
# Run HERE (a machine with registry access) before using the GPU machine of the `device` tool, which reaches no
# registry: fetch the Python 3.12 wheels it lacks into .whl/ (git-ignored; name it in the run's `carry`).
# Its image already has torch, CuPy, pytest, pytest-xdist, hypothesis, numpy and matplotlib.
#   bash benchmarks/device/prepare.sh             # av + PyNvVideoCodec (about 59 MiB of the 64 MiB a call carries)
#   bash benchmarks/device/prepare.sh torchcodec  # torchcodec alone, for a second call (needs FFmpeg libs there)
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .whl && mkdir -p .whl
if [[ "${1:-}" == "torchcodec" ]]; then
  pkgs=(torchcodec)
else
  pkgs=("av==$(python3 -c 'import av; print(av.__version__)')" pynvvideocodec)
fi
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "${pkgs[@]}"
du -sh .whl && ls .whl
