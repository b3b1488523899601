// splitmix64, shared by the CPU backend and both sides of the CUDA backend
// (dropout masks and rewiring run the same functions on the device: XMC_HD).
#pragma once
#include <cstdint>

#include "hd.h"

namespace xmc::common {

// splitmix64 finaliser: the counter-based hash behind every seeded op
// (dropout masks, rewiring). The CUDA kernels must use the same function.
XMC_HD inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A small sequential generator (splitmix64 stream) for rewiring.
struct SplitMix {
  uint64_t state;
  XMC_HD explicit SplitMix(uint64_t seed) : state(seed) {}
  XMC_HD uint64_t next() {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) (multiply-shift; bias below 2^-32 for n < 2^32).
  XMC_HD uint64_t below(uint64_t n) {
#if defined(__CUDA_ARCH__)
    return __umul64hi(next(), n);
#else
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
#endif
  }
};

}  // namespace xmc::common
