#!/usr/bin/env bash
# Nsight Compute profile of the hot kernels, on a GPU host, of the addon that
# XMC_NATIVE_ADDON names (built in the same call by bench/gpu-run.sh or gpu-ab.sh):
#   XMC_NATIVE_ADDON=/tmp/ab-src-g8/build/Release/xmc_native.node OUT=... bash bench/gpu-ncu.sh
# Profiles, on A670K-FFI32-64k at batch 128 after ~220 training steps (XMC_NCU_SKIP
# launches of the loss kernel skipped, default 220; XMC_NCU_TRAIN_STEPS, default 200,
# must leave that many: 550 and 500 profile the bench's "after 545 steps" regime):
# the fused loss/backward kernel, and the fused top-k kernels of the first
# inference batch (XMC_NCU_TOPK=0: not; XMC_NCU_LOSS=0: not the loss kernel;
# XMC_NCU_TOPK_KERNELS: the regex of the top-k kernels, e.g. 'topk_int8_kernel' with
# XMC_NCU_BENCH_ARGS="--int8 --only none"). Reports go to $OUT/ncu-*.txt.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/xmc-gpu-out}
source bench/gpu-env.sh || exit 1
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
[ -n "$ncu" ] || { echo "gpu-ncu: no ncu on this host"; exit 1; }
sections="--section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats --section LaunchStats --section SchedulerStats"
stalls=long_scoreboard,short_scoreboard,lg_throttle,mio_throttle,math_pipe_throttle,wait,not_selected,selected,barrier,drain,no_instruction,branch_resolving,dispatch_stall
metrics=$(for s in ${stalls//,/ }; do printf 'smsp__warp_issue_stalled_%s_per_warp_active.pct,' "$s"; done)lts__t_sectors_op_read.sum,lts__t_sectors_op_red.sum,lts__t_sectors_op_atom.sum,lts__t_sectors_op_write.sum,smsp__inst_executed.sum
bench="node bench/gpu-bench.mjs --batch ${XMC_NCU_BATCH:-128} --steps 20 --train-steps ${XMC_NCU_TRAIN_STEPS:-200} --no-unfused --no-tf32 --no-torch ${XMC_NCU_BENCH_ARGS:-}"
run() {  # name, kernel regex, launches to skip, count
  local t0=$(date +%s)
  timeout ${XMC_NCU_TIMEOUT:-150} "$ncu" --clock-control none -k "regex:$2" --launch-skip "$3" --launch-count "$4" $sections --metrics "$metrics" $bench > "$OUT/ncu-$1.txt" 2>&1
  echo "== ncu $1 (exit $?, $(( $(date +%s) - t0 )) s)"
  grep -E '^\s+(Duration|Memory Throughput|DRAM Throughput|L1/TEX Hit Rate|L2 Hit Rate|L2 Cache Throughput|L1/TEX Cache Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per Thread|Warp Cycles Per Issued Instruction|Issued Warp Per Scheduler)\s' "$OUT/ncu-$1.txt" | tr -s ' ' | head -${XMC_NCU_LINES:-40}
  grep -E '^\s+(smsp__warp_issue_stalled|lts__t_sectors|smsp__inst_executed)' "$OUT/ncu-$1.txt" | tr -s ' ' | sed 's/smsp__warp_issue_stalled_//; s/_per_warp_active.pct//' | awk '$NF != "0" && $NF != "0.00"' | head -${XMC_NCU_LINES:-40}
}
[ "${XMC_NCU_LOSS:-1}" = 0 ] || run loss 'loss_backward_kernel' "${XMC_NCU_SKIP:-220}" 1
[ "${XMC_NCU_TOPK:-1}" = 0 ] || run topk "${XMC_NCU_TOPK_KERNELS:-topk_scores_kernel|topk_select_kernel}" 0 2
