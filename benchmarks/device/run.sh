#!/usr/bin/env bash
# Run ON the GPU machine, through the device tool, from the repository root, with `.whl` carried:
#   bash benchmarks/device/run.sh         # smoke, GPU tests and benchmarks in one go, about 6 minutes; results in $OUT
#   bash benchmarks/device/run.sh tests   # smoke + GPU tests (GPUDECODE_REQUIRE_GPU=1) only
#   bash benchmarks/device/run.sh bench   # benchmarks only (gpu_decode, short clips on CUDA, transforms)
#   bash benchmarks/device/run.sh suite   # the whole suite (pixel-oracle tests fail there without an ffmpeg CLI)
# Each step has its own time limit, so one hung step cannot eat the call. Only 8 files come back from $OUT, so the
# logs go to one tarball ($OUT/kit.tgz), re-packed after every step (a call killed at its limit still returns what
# finished), beside $OUT/summary.md.
set -uo pipefail
what=${1:-all}
OUT=${OUT:-/tmp/gpudecode-out}
LOG=/tmp/kit
mkdir -p "$OUT" "$LOG"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed"; exit 1; }
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 GPUDECODE_REQUIRE_GPU=1

pack() {
  {
    echo "# GPU kit summary ($(date -u +%FT%TZ))"; echo; echo '```'; cat "$LOG/machine.txt"; echo '```'
    echo; echo "## smoke"; echo '```'; grep -v "^PyNvVideoCodec " "$LOG/smoke.log" | tail -40 2>/dev/null; echo '```'
    echo; echo "## gpu tests"; echo '```'; tail -60 "$LOG/gpu_tests.log" 2>/dev/null; echo '```'
    echo; echo "## benchmark"; cat "$LOG/gpu_decode.md" 2>/dev/null || tail -20 "$LOG/gpu_decode.log" 2>/dev/null
    echo; echo "## short clips on CUDA"; cat "$LOG/short_clips_cuda.md" 2>/dev/null \
      || tail -20 "$LOG/short_clips_cuda.log" 2>/dev/null
    echo; echo "## transforms on CUDA"; cat "$LOG/gpu_transforms.md" 2>/dev/null \
      || tail -20 "$LOG/gpu_transforms.log" 2>/dev/null
    echo; echo "## whole suite"; echo '```'; tail -1 "$LOG/full_suite.log" 2>/dev/null
    grep -E "^(FAILED|ERROR) " "$LOG/full_suite.log" 2>/dev/null | sed -E 's/^(FAILED|ERROR) [^ ]+( - )?//' \
      | cut -c1-160 | sort | uniq -c | sort -rn | head -25; echo '```'
  } > "$OUT/summary.md"
  tar czf "$OUT/kit.tgz" -C /tmp kit
}

{ nvidia-smi -L; nvidia-smi --query-gpu=driver_version --format=csv,noheader; python3 -c \
  "import torch, av, cupy, PyNvVideoCodec as n; print('torch', torch.__version__, 'av', av.__version__, 'cupy', \
cupy.__version__, 'PyNvVideoCodec', getattr(n, '__version__', '?'))"; } > "$LOG/machine.txt" 2>&1
pack

tests() {
  timeout 60 python3 benchmarks/device/smoke.py > "$LOG/smoke.log" 2>&1; pack
  timeout "${1:-300}" python3 -m pytest -m gpu -q -p no:cacheprovider -n 8 -ra --tb=short --timeout 60 tests \
    > "$LOG/gpu_tests.log" 2>&1; pack
}

bench() {
  timeout 45 python3 -m gpudecode bench gpudecode/assets/sample.mp4 --device cpu,cuda --json > "$LOG/cli_bench.json" \
    2>&1 || echo "cli bench failed" >> "$LOG/cli_bench.json"
  timeout 120 python3 benchmarks/make_media.py gpu > "$LOG/make_media.log" 2>&1 \
    && timeout "${1:-360}" python3 benchmarks/gpu_decode.py --rounds "${2:-5}" > "$LOG/gpu_decode.log" 2>&1
  cp benchmarks/results/gpu_decode.json benchmarks/results/gpu_decode.md "$LOG/" 2>/dev/null; pack
  # many short clips on CUDA (issue 15): gpudecode beside PyNvVideoCodec's SimpleDecoder (and torchcodec if present)
  timeout "${3:-150}" python3 benchmarks/short_clips.py --clips 60 --rounds 1 --device cuda --threads 0 \
    > "$LOG/short_clips_cuda.log" 2>&1
  cp benchmarks/results/short_clips.json "$LOG/short_clips_cuda.json" 2>/dev/null
  cp benchmarks/results/short_clips.md "$LOG/short_clips_cuda.md" 2>/dev/null; pack
  # decode-time transforms (issue 16): the fused kernel against decode-then-interpolate, frames/s and memory
  timeout "${4:-90}" python3 benchmarks/gpu_transforms.py --rounds 2 --frames 120 \
    > "$LOG/gpu_transforms.log" 2>&1
  cp benchmarks/results/gpu_transforms.md benchmarks/results/gpu_transforms.json "$LOG/" 2>/dev/null; pack
}

suite() {
  # -rfE --tb=line: one line per failure, so a suite cut short by its limit still says what failed and why
  timeout "${1:-300}" python3 -m pytest -q -p no:cacheprovider -n 12 --timeout 120 -rfE --tb=line tests \
    > "$LOG/full_suite.log" 2>&1
  pack
}

case "$what" in
  # limits add up to about 7 minutes with the clip encodes; the whole suite is left out: that machine has no ffmpeg
  # CLI for the pixel oracle (its wheel does not fit beside the others), so run it apart, when time is left
  all) tests 150; bench 160 2 80 60 ;;
  tests) tests ;;
  bench) bench ;;
  suite) suite ;;
  *) echo "usage: run.sh [all|tests|bench|suite]"; exit 2 ;;
esac
ls -la "$OUT"; cat "$OUT/summary.md"
