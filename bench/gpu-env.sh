# Sourced by the bench/gpu-*.sh scripts on a GPU host: node, npm and node_modules from
# .gpu/ (../shared/gpu/enter.sh), and the OpenBLAS runtime the CPU reference backend links.
export PATH=/usr/local/cuda/bin:$PATH
if [ -z "${XMC_GPU_ENV:-}" ]; then
  source .gpu/enter.sh >> "${OUT:-/tmp}/env.txt" 2>&1 || { echo "gpu-env: .gpu/enter.sh failed"; tail "${OUT:-/tmp}/env.txt"; return 1; }
  mkdir -p /tmp/openblas && tar -xJf .gpu/openblas.tar.xz -C /tmp/openblas && ln -sf libopenblas.so.0 /tmp/openblas/lib/libopenblas.so
  export LD_LIBRARY_PATH=/tmp/openblas/lib:${LD_LIBRARY_PATH:-} CMAKE_PREFIX_PATH=/tmp/openblas
  export XMC_GPU_ENV=1
fi
