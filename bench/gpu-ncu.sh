#!/usr/bin/env bash
# Nsight Compute profile of the hot kernels, on a GPU host, after bench/gpu-run.sh
# built the addon (build-gpu/) in the same call. Usage (from the repository root):
#   OUT=... bash bench/gpu-ncu.sh
# Profiles, on A670K-FFI32-64k at batch 128 after ~200 training steps (when most
# labels no longer have a gradient): the fused loss/backward kernel, and the
# fused top-k kernels of the first inference batch. Reports go to $OUT/ncu-*.txt.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/xmc-gpu-out}
export PATH=/usr/local/cuda/bin:$PATH
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
[ -n "$ncu" ] || { echo "gpu-ncu: no ncu on this host"; exit 1; }
sections="--section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats --section LaunchStats --section SchedulerStats"
bench="node bench/gpu-bench.mjs --batch 128 --steps 20 --train-steps 200 --no-unfused --no-tf32 --no-torch ${XMC_NCU_BENCH_ARGS:-}"
run() {  # name, kernel regex, launches to skip, count
  local t0=$(date +%s)
  timeout ${XMC_NCU_TIMEOUT:-150} "$ncu" --clock-control none -k "regex:$2" --launch-skip "$3" --launch-count "$4" $sections $bench > "$OUT/ncu-$1.txt" 2>&1
  echo "== ncu $1 (exit $?, $(( $(date +%s) - t0 )) s)"
  grep -E '^\s+(Duration|Memory Throughput|DRAM Throughput|L1/TEX Hit Rate|L2 Hit Rate|L2 Cache Throughput|L1/TEX Cache Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per Thread|Warp Cycles Per Issued Instruction|Issued Warp Per Scheduler|Block Limit [A-Za-z ]+)\s' "$OUT/ncu-$1.txt" | tr -s ' ' | head -${XMC_NCU_LINES:-40}
  grep -E 'Stall|stall' "$OUT/ncu-$1.txt" | head -4
}
run loss 'loss_backward_kernel' 220 1
run topk 'topk_scores_kernel|topk_select_kernel' 0 2
