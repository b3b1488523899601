#!/usr/bin/env bash
# A/B of kernel variants on a GPU host, in one call (bench/gpu-env.sh sets up node
# from .gpu/, as bench/gpu-prepare.sh packed it). Each variant is a build
# of the addon with its own CUDAFLAGS, or of another native/ tree:
#   XMC_AB_VARIANTS="base=@.base-native g8= g4=-DXMC_GATHER_GROUP=4" \
#   XMC_AB_BENCH="--batch 128 --no-unfused --no-torch" OUT=... bash bench/gpu-ab.sh
# name=@DIR builds with DIR in place of native/ (e.g. the previous commit's, copied in
# by hand); name=FLAGS builds the working tree with CUDAFLAGS=FLAGS (several flags joined by
# commas: g4pf=-DXMC_INT8_GROUP=4,-DXMC_INT8_PREFETCH=1). The builds run in
# parallel; then bench/gpu-bench.mjs runs once per variant, one after the other,
# and the lines that carry figures are printed side by side. XMC_AB_REPEAT=N (default 1)
# runs the variants round-robin N times (the same build varies by 2-5% from run to run,
# so one sample each decides nothing below that) and ends with a table of the training
# samples/s of each variant and run.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/xmc-gpu-out}
mkdir -p "$OUT"
source bench/gpu-env.sh || exit 1
root=$PWD
names=()
for v in ${XMC_AB_VARIANTS:-g8=}; do
  name=${v%%=*}; spec=${v#*=}; names+=("$name")
  src=/tmp/ab-src-$name
  rm -rf "$src" && mkdir -p "$src"
  cp -r CMakeLists.txt package.json native "$src/" && ln -s "$root/node_modules" "$src/node_modules"
  flags=${spec//,/ }
  if [ "${spec#@}" != "$spec" ]; then rm -rf "$src/native" && cp -r "${spec#@}" "$src/native"; flags=; fi
  ( cd "$src" && CUDAFLAGS="$flags" XMC_CUDA=ON XMC_CUDA_ARCHS=90 CMAKE_BUILD_PARALLEL_LEVEL=6 \
      timeout 300 npx cmake-js compile --directory . --out build > "/tmp/ab-build-$name.log" 2>&1 ) &
done
wait
repeat=${XMC_AB_REPEAT:-1}
for rep in $(seq 1 "$repeat"); do
  for name in "${names[@]}"; do
    addon=/tmp/ab-src-$name/build/Release/xmc_native.node
    [ -z "${XMC_AB_BENCH+x}" ] || [ "$XMC_AB_BENCH" != none ] || continue
    if [ ! -f "$addon" ]; then [ "$rep" = 1 ] && { echo "== $name: build failed"; tail -5 "/tmp/ab-build-$name.log"; }; continue; fi
    log=$OUT/ab-$name.log
    [ "$repeat" = 1 ] || log=$OUT/ab-$name-$rep.log
    t0=$(date +%s)
    XMC_NATIVE_ADDON=$addon timeout ${XMC_AB_TIMEOUT:-200} node bench/gpu-bench.mjs ${XMC_AB_BENCH:-} > "$log" 2>&1
    status=$?
    run=""
    [ "$repeat" = 1 ] || run=" (run $rep)"
    echo "== $name$run (exit $status, $(( $(date +%s) - t0 )) s)"
    grep -E '^(train|top-|  per-op|  \[)' "$log" | sed -E 's/; rewire [^;]*;/;/' | cut -c1-330
  done
done
if [ "$repeat" != 1 ]; then
  echo "== training samples/s (the last phase of each variant and batch), run 1 .. $repeat"
  for name in "${names[@]}"; do
    for rep in $(seq 1 "$repeat"); do
      [ -f "$OUT/ab-$name-$rep.log" ] || continue
      grep -E '^train \[' "$OUT/ab-$name-$rep.log" | grep -v 'after 5 steps' |
        sed -E "s/^train \[([^]]+)\] B=([0-9]+) .* ([0-9]+) samples\/s; rewire.*/$name \1 B=\2 \3/"
    done
  done | awk '{ key = $1 " " $2 " " $3; if (!(key in row)) order[n++] = key; row[key] = row[key] " " $4 }
              END { for (i = 0; i < n; i++) print order[i] ":" row[order[i]] }'
fi
