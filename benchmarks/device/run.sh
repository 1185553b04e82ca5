#!/usr/bin/env bash
# Run ON the GPU machine, through the device tool, from the repository root, with `.whl` carried:
#   bash benchmarks/device/run.sh tests   # GPU tests (GPUDECODE_REQUIRE_GPU=1), then the whole suite (~3 min)
#   bash benchmarks/device/run.sh bench   # benchmarks/gpu_decode.py and `gpudecode bench --device cpu,cuda` (~6 min)
# Logs and results land in $OUT (at most 8 files come back).
set -uo pipefail
what=${1:-tests}
OUT=${OUT:-/tmp/gpudecode-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed"; exit 1; }
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 GPUDECODE_REQUIRE_GPU=1
{ nvidia-smi -L; nvidia-smi --query-gpu=driver_version --format=csv,noheader; python3 -c \
  "import torch, av, cupy, PyNvVideoCodec as n; print('torch', torch.__version__, 'av', av.__version__, 'cupy', \
cupy.__version__, 'PyNvVideoCodec', getattr(n, '__version__', '?'))"; } 2>&1 | tee "$OUT/machine.txt"
case "$what" in
  tests)
    python3 -m pytest -m gpu -q -p no:cacheprovider -n 8 -ra tests 2>&1 | tee "$OUT/gpu_tests.log" | tail -40
    python3 -m pytest -q -p no:cacheprovider -n 8 tests 2>&1 | tee "$OUT/full_suite.log" | tail -15
    ;;
  bench)
    python3 -m gpudecode bench gpudecode/assets/sample.mp4 --device cpu,cuda --json > "$OUT/cli_bench.json" \
      || echo "cli bench failed"
    python3 benchmarks/make_media.py gpu && python3 benchmarks/gpu_decode.py --rounds 5 2>&1 | tee "$OUT/gpu_decode.log"
    cp benchmarks/results/gpu_decode.json benchmarks/results/gpu_decode.md "$OUT/" 2>/dev/null
    python3 benchmarks/charts.py 2>&1 | tail -3 && cp benchmarks/results/*gpu*.png "$OUT/" 2>/dev/null
    ;;
  *) echo "usage: run.sh tests|bench"; exit 2 ;;
esac
ls -la "$OUT"
