#!/usr/bin/env bash
# On the development machine: builds what bench/gpu-run.sh needs on the GPU
# host and gathers it, with a snapshot of the working tree, into one folder
# that the device tool carries:
#   .gpu/cuda-wt/   sources (tracked + untracked files), dist/, .gpu/ (node, npm,
#                   node_modules, from ../shared/gpu/pack.sh) and .gpu/openblas.tar.xz.
#                   The sm_90 build here is a compile check; the GPU host builds its own.
# Then, with the device tool: run `cd .gpu/cuda-wt && bash bench/gpu-run.sh`
# carrying `.gpu/cuda-wt`. The device tool sends the session's checkout (not a
# helper's worktree): the folder must be there, e.g. run this script in that
# checkout, or copy .gpu/cuda-wt into it (.gpu/ is git-ignored).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
XMC_CUDA=ON XMC_CUDA_ARCHS=90 CMAKE_BUILD_PARALLEL_LEVEL=2 npx cmake-js compile --directory . --out build > /tmp/xmc-gpu-build.log 2>&1 || { tail -30 /tmp/xmc-gpu-build.log; exit 1; }
npx tsc -p tsconfig.json
# pack.sh writes into .git/info/exclude, which a worktree does not have as a folder: run a copy without that line.
pack=$(mktemp -d)
sed '/\.git\/info\/exclude/d' ../shared/gpu/pack.sh > "$pack/pack.sh"
cp ../shared/gpu/enter.sh "$pack/enter.sh"
bash "$pack/pack.sh" > /dev/null
rm -rf "$pack"
if [ ! -f .gpu/openblas.tar.xz ]; then
  tmp=$(mktemp -d)
  mkdir -p "$tmp/lib" "$tmp/include"
  cp -L /usr/lib/x86_64-linux-gnu/libopenblas.so.0 /usr/lib/x86_64-linux-gnu/libgfortran.so.5 /usr/lib/x86_64-linux-gnu/libquadmath.so.0 "$tmp/lib/"
  cp /usr/include/x86_64-linux-gnu/openblas-pthread/*.h "$tmp/include/"
  tar -C "$tmp" -cf - lib include | xz -T2 -6 > .gpu/openblas.tar.xz
  rm -rf "$tmp"
fi
snap=.gpu/cuda-wt
rm -rf "$snap"
mkdir -p "$snap/.gpu"
git ls-files --cached --others --exclude-standard -z | xargs -0 cp --parents -t "$snap"
# build/ stays here: the GPU host builds its own addon (with cuBLAS), and the carry is limited to 64 MiB
cp -r dist "$snap/"
cp .gpu/node.xz .gpu/npm.tar.xz .gpu/nats-server.xz .gpu/node_modules.tar.xz .gpu/enter.sh .gpu/openblas.tar.xz "$snap/.gpu/"
du -sh "$snap"
