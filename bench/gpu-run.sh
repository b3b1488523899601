#!/usr/bin/env bash
# Everything the GPU host does in one call (see /work/shared/gpu/README.md):
#   1. environment (nvidia-smi, nvcc, torch)
#   2. build the addon there with the host's full CUDA toolkit (cuBLAS) into
#      build-gpu/ (nothing else runs if that fails: no addon travels, the carry is limited to 64 MiB)
#   3. the GPU tests (npx vitest run test/cuda- test/train-memory-limit)
#   4. compute-sanitizer memcheck on a small run of every op (bench/gpu-sanity.mjs)
#   5. the benchmark (bench/gpu-bench.mjs), with the PyTorch references (XMC_SKIP_BENCH=1: not)
# Logs go to $OUT (the device tool brings them back); the end of stdout is a summary.
#
# Needs, next to the sources: .gpu/ (bash ../shared/gpu/pack.sh), .gpu/openblas.tar.xz
# (OpenBLAS runtime and headers for the CPU reference backend: bench/gpu-prepare.sh
# makes it), build/ (the carried addon) and dist/ (npm run build:ts).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/xmc-gpu-out}
mkdir -p "$OUT"
summary="$OUT/summary.txt"
: > "$summary"
note() { echo "== $*" | tee -a "$summary"; }
export PATH=/usr/local/cuda/bin:$PATH

{ nvidia-smi; nvcc --version; cmake --version; g++ --version | head -1; python3 -c 'import torch; print("torch", torch.__version__)'; } > "$OUT/env.txt" 2>&1
note "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"

source bench/gpu-env.sh || { note "bench/gpu-env.sh failed"; exit 1; }

addon=$PWD/build/Release/xmc_native.node
t0=$(date +%s)
if timeout 200 env XMC_CUDA=ON XMC_CUDA_ARCHS=${XMC_CUDA_ARCHS:-90} CMAKE_BUILD_PARALLEL_LEVEL=16 \
    npx cmake-js compile --directory . --out build-gpu > "$OUT/build.log" 2>&1 \
    && [ -f build-gpu/Release/xmc_native.node ]; then
  addon=$PWD/build-gpu/Release/xmc_native.node
  note "built on the GPU host in $(( $(date +%s) - t0 )) s: $(grep -o 'xmc_native: .*' "$OUT/build.log" | head -1)"
else
  note "build on the GPU host failed after $(( $(date +%s) - t0 )) s (build.log)"
  grep -E 'error|Error|CMake' "$OUT/build.log" | head -20
fi
export XMC_NATIVE_ADDON=$addon
note "addon: $addon: $(node -e 'const a = require(process.env.XMC_NATIVE_ADDON); console.log(JSON.stringify(a.backendInfo().cuda))' 2>&1)"

t0=$(date +%s)
timeout 170 npx vitest run test/cuda- test/train-memory-limit > "$OUT/tests.log" 2>&1
note "tests (exit $?, $(( $(date +%s) - t0 )) s): $(sed 's/\x1b\[[0-9;]*m//g' "$OUT/tests.log" | grep -E 'Tests +[0-9]' | tr -s ' ')"
grep -E '✗|×|FAIL|AssertionError|Error:' "$OUT/tests.log" | sed 's/\x1b\[[0-9;]*m//g' | head -40

t0=$(date +%s)
timeout 70 compute-sanitizer --tool memcheck --error-exitcode 9 node bench/gpu-sanity.mjs > "$OUT/sanitizer.log" 2>&1
note "compute-sanitizer memcheck (exit $?, $(( $(date +%s) - t0 )) s): $(grep -E 'ERROR SUMMARY|gpu-sanity:' "$OUT/sanitizer.log" | tr '\n' ' ')"
grep -E 'FAIL|Invalid|out of bounds' "$OUT/sanitizer.log" | head -10
t0=$(date +%s)
timeout 60 compute-sanitizer --tool racecheck --error-exitcode 9 node bench/gpu-sanity.mjs > "$OUT/racecheck.log" 2>&1
note "compute-sanitizer racecheck (exit $?, $(( $(date +%s) - t0 )) s): $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY|gpu-sanity:' "$OUT/racecheck.log" | tr '\n' ' ')"

if [ "${XMC_SKIP_BENCH:-0}" = 1 ]; then echo; echo "---- summary"; cat "$summary"; exit 0; fi
t0=$(date +%s)
timeout 300 npm run bench:gpu -- ${XMC_BENCH_ARGS:-} --json "$OUT/bench.json" > "$OUT/bench.log" 2>&1
note "bench (exit $?, $(( $(date +%s) - t0 )) s)"
grep -vE '^torch (dense|ffi)-.* B=[0-9]+: \{' "$OUT/bench.log" | tail -30

echo; echo "---- summary"; cat "$summary"
