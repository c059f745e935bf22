#!/usr/bin/env bash
# One scripted pass of every GPU check (issues 5, 6, 10, 11), for a lent GPU machine (budget: ~8 minutes).
#
#   OUT=/some/dir bash bench/gpu_check.sh        # from the repository root
#
# On this workplace's lent machine: run(command="bash bench/gpu_check.sh", timeout_s=540) ($OUT is
# set there); copy $OUT/summary.md (and the pass count from test_cuda.log) into bench/RESULTS-gpu.md.
#
# 1. environment: GPU, driver, nvcc, Python, CuPy/torch versions       -> $OUT/env.txt
# 2. build _cpu and _cuda in place for this GPU's architecture only    -> $OUT/build.log
#    (ptxas register/shared-memory report of every kernel: $OUT/ptxas.txt)
# 3. tests/test_cuda.py, test_backends.py, test_torch_cuda.py, test_distributed_cuda.py -> $OUT/test_cuda.log
# 4. the whole CPU suite against the same build                          -> $OUT/test_all.log
# 5. compute-sanitizer memcheck over a slice of the GPU tests (where the
#    runtime allows it; gVisor machines refuse the device)              -> $OUT/memcheck.log
# 6. python -m convcore.bench --device cuda (beside cuDNN)               -> $OUT/bench_cuda.json
#    and its conv rows again with --tf32 (TF32 on both sides)            -> summary.md
# QUICK=1 skips 4 and 5; BENCH=0 skips 6; CUDA_TEST_ARGS adds pytest arguments to 3.
# and a summary in the shape of bench/RESULTS-gpu.md, with the benchmark's table -> $OUT/summary.md
# (eight files: the most a lent machine's call brings back)
#
# CuPy: the lent H200 image has cupy-cuda13x 14.2.0; the machine cannot reach PyPI. If CuPy is
# missing, wheels carried in .whl/ (see the device notes: pip download cupy-cuda13x==14.2.0,
# 70 MB, fits the 64 MiB-per-call limit only without other wheels) are installed from there.
set -uo pipefail
OUT=${OUT:?set OUT to a writable directory}
PY=${PYTHON:-python3}
cd "$(dirname "$0")/.."
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start ))s] $*"; }

# ---- 1. environment ----------------------------------------------------------------------------
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  nvcc --version | tail -2
  $PY --version
  $PY - <<'EOF'
import importlib
for name in ("numpy", "cupy", "torch", "pybind11", "scikit_build_core", "pytest", "hypothesis", "sklearn"):
    try:
        mod = importlib.import_module(name)
        print(name, getattr(mod, "__version__", "?"))
    except Exception as exc:
        print(name, "MISSING", exc)
EOF
  echo "mpiexec: $(command -v mpiexec || echo none)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

if ! $PY -c "import cupy" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    stamp "installing carried wheels"
    $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "CuPy is missing and no wheels were carried: the GPU tests will skip" | tee -a "$OUT/env.txt"
  fi
fi

# ---- 2. build ------------------------------------------------------------------------------------
arch=$($PY -c "import torch; p = torch.cuda.get_device_properties(0); print(f'{p.major}{p.minor}')" 2>/dev/null \
       || nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
arch=${arch:-90}
stamp "building for sm_$arch"
rm -rf build/gpu
cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONVCORE_DEV_INPLACE=ON \
      -DCONVCORE_CUDA=ON -DCONVCORE_CUDA_ARCHS="$arch" -DCONVCORE_CUDA_VERBOSE=ON \
      -DPython_EXECUTABLE="$(command -v $PY)" \
      -Dpybind11_DIR="$($PY -c 'import pybind11; print(pybind11.get_cmake_dir())')" \
      > "$OUT/build.log" 2>&1 \
  && cmake --build build/gpu -j"$(nproc)" >> "$OUT/build.log" 2>&1
build_rc=$?
stamp "build rc=$build_rc"
grep -E "Compiling entry|registers" "$OUT/build.log" | paste - - \
  | sed -E 's/.*function .(_Z[^ ]*). for .(sm_[0-9]+).*Used ([0-9]+) registers.*barriers(, ([0-9]+) bytes smem)?.*/\2 \3 regs \5 smem \1/' \
  | c++filt > "$OUT/ptxas.txt" 2>/dev/null || true
grep -E "spill" "$OUT/build.log" | grep -v " 0 bytes spill stores, 0 bytes spill loads" >> "$OUT/ptxas.txt" || true
if [ $build_rc -ne 0 ]; then tail -40 "$OUT/build.log"; exit 1; fi

export PYTHONPATH=python${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
$PY -c "import convcore, json; print(json.dumps(convcore.backends()['cuda'], indent=1))" | tee -a "$OUT/env.txt"

# ---- 3. the GPU tests ------------------------------------------------------------------------------
stamp "the GPU tests"
# the GPU halves of issue 11 too: convcore.torch on CUDA tensors, Trainer(comm=...) on CuPy over 2
# MPI ranks (Open MPI refuses root without the two OMPI_ variables; the commands run as root there)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# pytest-xdist where installed (the lent H200's image has it): worker processes, so a test that
# crashes the interpreter is reported as failed and the rest still run (session 7's first runs
# lost every test after a segfault); 4 workers share the one GPU
XDIST=""
if $PY -c "import xdist" 2>/dev/null; then XDIST="-n 4"; fi
timeout 300 $PY -m pytest -q -rs $XDIST --durations=10 tests/test_cuda.py tests/test_backends.py \
  tests/test_torch_cuda.py tests/test_distributed_cuda.py ${CUDA_TEST_ARGS:-} \
  > "$OUT/test_cuda.log" 2>&1
cuda_rc=$?
tail -25 "$OUT/test_cuda.log"
stamp "test_cuda rc=$cuda_rc"

# ---- 6 (run early: the measurements matter more than the slower checks below) ----------------------
bench_rc="not run (BENCH=0)"; : > "$OUT/bench_cuda.txt"; : > "$OUT/bench_tf32.txt"
if [ "${BENCH:-1}" != 0 ]; then
stamp "python -m convcore.bench --device cuda"
timeout 180 $PY -m convcore.bench --device cuda --json "$OUT/bench_cuda.json" > "$OUT/bench_cuda.txt" 2>&1
bench_rc=$?
cat "$OUT/bench_cuda.txt"
stamp "bench rc=$bench_rc"
stamp "the conv rows again, TF32 against TF32"
timeout 120 $PY -m convcore.bench --device cuda --tf32 --rows book,r50,vgg,pw512,conv1d,convT \
  > "$OUT/bench_tf32.txt" 2>&1
echo "tf32 rc=$?" >> "$OUT/bench_tf32.txt"
cat "$OUT/bench_tf32.txt"
fi

# ---- 4. the whole suite against this build (skipped with QUICK=1) ----------------------------------
all_rc="not run (QUICK=1)"; : > "$OUT/test_all.log"
if [ "${QUICK:-0}" != 1 ]; then
stamp "whole suite"
timeout 150 $PY -m pytest -q ${XDIST:+-n 8} tests --ignore=tests/test_cuda.py \
  --ignore=tests/test_torch_cuda.py --ignore=tests/test_distributed_cuda.py > "$OUT/test_all.log" 2>&1
all_rc=$?
fi
tail -3 "$OUT/test_all.log"
stamp "whole suite rc=$all_rc"

# ---- 5. memcheck on a slice (best effort) ------------------------------------------------------------
if [ "${QUICK:-0}" = 1 ]; then
  mem_rc="not run (QUICK=1)"
elif command -v compute-sanitizer >/dev/null; then
  stamp "compute-sanitizer memcheck"
  timeout 90 compute-sanitizer --tool memcheck --error-exitcode 86 --target-processes all \
    $PY -m pytest -q -x tests/test_cuda.py -p no:cacheprovider \
    -k "float64 and not finite and not index_math and not deep_conv" > "$OUT/memcheck.log" 2>&1
  mem_rc=$?
  tail -5 "$OUT/memcheck.log"
  stamp "memcheck rc=$mem_rc (124: ran out of its time slice; 86: errors found)"
else
  mem_rc="not run (no compute-sanitizer)"
fi

# ---- summary ------------------------------------------------------------------------------------------
{
  echo "## GPU check ($(date -u +%Y-%m-%d), bench/gpu_check.sh)"
  echo
  echo '```'
  head -20 "$OUT/env.txt"
  echo '```'
  echo
  echo "- build: rc=$build_rc, sm_$arch (ptxas report: ptxas.txt)"
  echo "- \`pytest tests/test_cuda.py tests/test_backends.py tests/test_torch_cuda.py tests/test_distributed_cuda.py\`: rc=$cuda_rc; $(tail -1 "$OUT/test_cuda.log")"
  echo "- whole suite on this build: rc=$all_rc; $(tail -1 "$OUT/test_all.log")"
  echo "- compute-sanitizer memcheck (float64 slice of test_cuda.py): rc=$mem_rc"
  echo "- \`python -m convcore.bench --device cuda\`: rc=$bench_rc"
  echo
  echo '```'
  cat "$OUT/bench_cuda.txt"
  echo '```'
  echo
  echo '`python -m convcore.bench --device cuda --tf32` (conv rows; TF32 on both sides):'
  echo
  echo '```'
  cat "$OUT/bench_tf32.txt"
  echo '```'
  echo "- wall time of this script: $(( $(date +%s) - start )) s"
} > "$OUT/summary.md"
rm -f "$OUT/bench_cuda.txt" "$OUT/bench_tf32.txt"
cat "$OUT/summary.md"
