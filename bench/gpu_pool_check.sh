#!/usr/bin/env bash
# gpu-pool branch: build _cpu/_cuda in place on the lent GPU, run the pool/depthwise GPU tests,
# then the depthwise and pooling bench rows beside cuDNN.   run(command="bash bench/gpu_pool_check.sh")
set -uo pipefail
OUT=${OUT:-/tmp/out}; PY=${PYTHON:-python3}
cd "$(dirname "$0")/.."
t0=$(date +%s); stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
rm -rf build/gpu
cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONVCORE_DEV_INPLACE=ON \
  -DCONVCORE_CUDA=ON -DCONVCORE_CUDA_ARCHS=90 -DCONVCORE_CUDA_VERBOSE=ON \
  -DPython_EXECUTABLE="$(command -v $PY)" \
  -Dpybind11_DIR="$($PY -c 'import pybind11; print(pybind11.get_cmake_dir())')" > "$OUT/build.log" 2>&1 \
  && cmake --build build/gpu -j"$(nproc)" --target _cpu _cuda >> "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
stamp built
export PYTHONPATH=python PYTHONUNBUFFERED=1
timeout ${TEST_S:-120} $PY -m pytest -q -x -p no:cacheprovider tests/test_cuda.py -k "${TEST_K:-pool or depthwise}" > "$OUT/test.log" 2>&1
echo "tests rc=$?"; tail -4 "$OUT/test.log"; stamp tested
timeout ${BENCH_S:-200} $PY -m convcore.bench --device cuda --rows "${ROWS:-mnv1.dw,pool}" > "$OUT/bench.txt" 2>&1
echo "bench rc=$?"; stamp benched
tail -30 "$OUT/bench.txt"
