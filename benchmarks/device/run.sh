#!/usr/bin/env bash
# Run ON the GPU machine, through the device tool, from the repository root, with `.whl` carried:
#   bash benchmarks/device/run.sh         # everything below in one go, under 8 minutes; writes $OUT/summary.md
#   bash benchmarks/device/run.sh tests   # GPU tests (GPUDECODE_REQUIRE_GPU=1), then the whole suite
#   bash benchmarks/device/run.sh bench   # benchmarks/gpu_decode.py and `gpudecode bench --device cpu,cuda`
# Each step has its own time limit, so one hung step cannot eat the call. Logs and results land in $OUT.
set -uo pipefail
what=${1:-all}
OUT=${OUT:-/tmp/gpudecode-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed"; exit 1; }
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 GPUDECODE_REQUIRE_GPU=1
{ nvidia-smi -L; nvidia-smi --query-gpu=driver_version --format=csv,noheader; python3 -c \
  "import torch, av, cupy, PyNvVideoCodec as n; print('torch', torch.__version__, 'av', av.__version__, 'cupy', \
cupy.__version__, 'PyNvVideoCodec', getattr(n, '__version__', '?'))"; } 2>&1 | tee "$OUT/machine.txt"

tests() {
  timeout "${1:-300}" python3 -m pytest -m gpu -q -p no:cacheprovider -n 8 -ra tests 2>&1 \
    | tee "$OUT/gpu_tests.log" | tail -40
  timeout "${2:-300}" python3 -m pytest -q -p no:cacheprovider -n 8 tests 2>&1 | tee "$OUT/full_suite.log" | tail -15
}

bench() {
  timeout 45 python3 -m gpudecode bench gpudecode/assets/sample.mp4 --device cpu,cuda --json > "$OUT/cli_bench.json" \
    || echo "cli bench failed"
  python3 benchmarks/make_media.py gpu \
    && timeout "${1:-360}" python3 benchmarks/gpu_decode.py --rounds "${2:-5}" 2>&1 | tee "$OUT/gpu_decode.log"
  cp benchmarks/results/gpu_decode.json benchmarks/results/gpu_decode.md "$OUT/" 2>/dev/null
  # many short clips on CUDA (issue 15): gpudecode beside PyNvVideoCodec's SimpleDecoder (and torchcodec if present)
  timeout "${3:-150}" python3 benchmarks/short_clips.py --clips 60 --rounds 1 --device cuda --threads 0 2>&1 \
    | tee "$OUT/short_clips_cuda.log" | tail -5
  cp benchmarks/results/short_clips.json "$OUT/short_clips_cuda.json" 2>/dev/null
  cp benchmarks/results/short_clips.md "$OUT/short_clips_cuda.md" 2>/dev/null
  # decode-time transforms (issue 16): the fused kernel against decode-then-interpolate, frames/s and memory
  timeout "${4:-90}" python3 benchmarks/gpu_transforms.py --rounds 2 --frames 120 --clips h264_1920x1080 2>&1 \
    | tee "$OUT/gpu_transforms.log" | tail -8
  cp benchmarks/results/gpu_transforms.md "$OUT/" 2>/dev/null
}

summary() {
  {
    echo "# GPU kit summary ($(date -u +%F))"; echo; echo '```'; cat "$OUT/machine.txt"; echo '```'
    echo; echo "## gpu tests"; echo '```'; tail -25 "$OUT/gpu_tests.log" 2>/dev/null; echo '```'
    echo; echo "## whole suite"; echo '```'; tail -8 "$OUT/full_suite.log" 2>/dev/null; echo '```'
    echo; echo "## benchmark"; cat "$OUT/gpu_decode.md" 2>/dev/null || tail -20 "$OUT/gpu_decode.log" 2>/dev/null
    echo; echo "## short clips on CUDA"; cat "$OUT/short_clips_cuda.md" 2>/dev/null \
      || tail -20 "$OUT/short_clips_cuda.log" 2>/dev/null
    echo; echo "## transforms on CUDA"; cat "$OUT/gpu_transforms.md" 2>/dev/null \
      || tail -20 "$OUT/gpu_transforms.log" 2>/dev/null
  } > "$OUT/summary.md"
}

case "$what" in
  all) tests 100 80; bench 110 2 90 60; summary ;;  # limits add up to about 8 minutes with the clip encodes
  tests) tests ;;
  bench) bench ;;
  *) echo "usage: run.sh [all|tests|bench]"; exit 2 ;;
esac
ls -la "$OUT"
