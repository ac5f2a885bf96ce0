#!/usr/bin/env bash
# GPU check for a device engineer: build caper_edge with the CUDA kernels (and nvJPEG) for this
# machine's GPU, run the `gpu` tests plus the CPU tests of the same modules, the GPU benchmark
# cases (each against its CPU path in the same run), and compute-sanitizer's memcheck over a
# subset of the GPU tests. Uses the python3 on PATH and what it already has (numpy, OpenCV,
# CuPy, pytest, hypothesis, scikit-build-core, pybind11); installs nothing from the network.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]       (default benchmarks/out/gpu)
#
# Environment: CAPER_ARCH (default: the GPU's own compute capability, e.g. 90 or 87),
# WHEELS (a folder of wheels to install first, e.g. nvidia-nvjpeg where the toolkit lacks it),
# SANITIZER_S (seconds for the memcheck run, default 150; 0 skips it).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-benchmarks/out/gpu}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

nvidia-smi -L || { echo "gpu_check: nvidia-smi found no GPU" >&2; exit 2; }
nvcc --version | tail -2
"$PY" -V
if [ -n "${WHEELS:-}" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir "$WHEELS"/*.whl || exit 3
fi
ARCH=${CAPER_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')}
echo "building for sm_$ARCH"
start=$(date +%s)
CAPER_EDGE_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$PY" -m pip install -q --no-index --no-build-isolation \
  --no-deps -e . -Cbuild-dir=/tmp/caper_gpu_build "-Ccmake.define.CAPER_EDGE_CUDA_ARCHITECTURES=$ARCH" \
  >"$OUT_DIR/build.log" 2>&1 || { tail -40 "$OUT_DIR/build.log"; exit 4; }
echo "build: $(( $(date +%s) - start )) s"
grep -E "^CAPER_NVJPEG_LIBRARY" /tmp/caper_gpu_build/CMakeCache.txt || echo "nvJPEG: not found"
"$PY" -c "import caper_edge as c; print(c.build_info()); print(c.cuda_device_count(), c.cuda_device_name(0))" || exit 5

status=0
"$PY" -m pytest -q -p no:cacheprovider tests/test_preprocess.py tests/test_detect.py tests/test_jpeg.py \
  tests/test_build.py::test_core_exports_only_its_init_function -rs 2>&1 | tee "$OUT_DIR/pytest.log" | tail -25 || status=6
grep -q " passed" "$OUT_DIR/pytest.log" && ! grep -qE "[0-9]+ (failed|error)" "$OUT_DIR/pytest.log" || status=6

"$PY" -m benchmarks --only preprocess --only detect --only jpeg --out "$OUT_DIR" 2>&1 | tee "$OUT_DIR/bench.log" |
  grep -E "cuda|nvJPEG|GPU|wrote" || status=7

if [ "${SANITIZER_S:-150}" != 0 ] && command -v compute-sanitizer >/dev/null; then
  timeout "${SANITIZER_S:-150}" compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 \
    "$PY" -m pytest -q -p no:cacheprovider -x tests/test_preprocess.py tests/test_detect.py tests/test_jpeg.py \
    -m gpu -k "stream_and_out or many_survivors or nvjpeg_matches or nvjpeg_refuses or (matches_cpu and 480 and yuyv) or (equals_cpu and float16)" \
    >"$OUT_DIR/memcheck.log" 2>&1
  rc=$?
  tail -6 "$OUT_DIR/memcheck.log"
  echo "compute-sanitizer memcheck exit $rc (0 clean, 9 errors found, 124 out of time)"
  [ "$rc" = 0 ] || [ "$rc" = 124 ] || status=8
fi
echo "gpu_check: exit $status"
exit $status
