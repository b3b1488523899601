// Counter-based random streams for the synthetic data generator.
//
// Every random quantity of a synthetic data set is drawn from a stream named by
// a key: key(seed, domain, a, b) hashes the seed, a domain tag (what the stream
// is for: a point's draws, a label's prototype, the label permutation, ...) and
// up to two indices (split, point index; label id; topic id). A stream is
// SplitMix64 started at its key: the i-th 64-bit draw is mix64(key + (i+1)*γ),
// so a point's draws depend only on (seed, split, point index), never on which
// thread made them or in what order. That is what makes the output bytes
// independent of the thread count.
//
// Distributions are built from the 64-bit draws with plain double arithmetic,
// sqrt and the libm-free det_log/det_exp of synth_math.h, so the same seed
// gives the same bits on every machine.
#pragma once
#include <cmath>
#include <cstdint>
#include "synth_math.h"

namespace xmc {
namespace synth {

// SplitMix64 finaliser (Stafford variant 13): a bijective 64-bit mixer.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Domain tags: one per kind of stream, so that e.g. label 5's prototype and
// point 5's draws never share a stream.
enum class Domain : uint64_t {
  Point = 1,        // a = split (0 train, 1 test), b = point index
  Prototype = 2,    // a = label id
  TopicCenter = 3,  // a = topic id
  TopicOf = 4,      // a = label id (which topic a label belongs to)
  Permutation = 5,  // popularity rank -> label id
  Projection = 6,   // the fixed latent -> feature matrix
};

inline uint64_t stream_key(uint64_t seed, Domain domain, uint64_t a = 0, uint64_t b = 0) {
  uint64_t h = mix64(seed ^ 0x6A09E667F3BCC909ULL);
  h = mix64(h ^ (static_cast<uint64_t>(domain) * 0x9E3779B97F4A7C15ULL));
  h = mix64(h ^ (a + 0x3C6EF372FE94F82BULL));
  h = mix64(h ^ (b + 0xA54FF53A5F1D36F1ULL));
  return h;
}

class Rng {
 public:
  explicit Rng(uint64_t key) : state_(key) {}

  uint64_t next_u64() {
    state_ += 0x9E3779B97F4A7C15ULL;
    return mix64(state_);
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

  // Uniform in (0, 1): never 0, so log() is finite.
  double uniform_open() { return (static_cast<double>(next_u64() >> 11) + 0.5) * 0x1.0p-53; }

  // Uniform integer in [0, n), by multiply-high (bias below 2^-64 * n).
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next_u64()) * n) >> 64);
  }

  // Standard normal by Marsaglia's polar method (no trigonometry); the second
  // value of each pair is kept for the next call.
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u, v, s;
    do {
      u = 2.0 * uniform() - 1.0;
      v = 2.0 * uniform() - 1.0;
      s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    const double factor = std::sqrt(-2.0 * det_log(s) / s);
    spare_ = v * factor;
    has_spare_ = true;
    return u * factor;
  }

  // Exponential with mean 1.
  double exponential() { return -det_log(uniform_open()); }

  // Gamma(shape, scale 1): Marsaglia & Tsang (2000); shape < 1 via the boost u^(1/shape).
  double gamma(double shape) {
    if (shape < 1.0) {
      double g = gamma(shape + 1.0);
      return g * det_pow(uniform_open(), 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0;
    const double c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x, v;
      do {
        x = normal();
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      double u = uniform_open();
      if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
      if (det_log(u) < 0.5 * x * x + d * (1.0 - v + det_log(v))) return d * v;
    }
  }

  // Poisson(lambda): exact (Knuth's product of uniforms) below 30, the rounded
  // normal approximation above (its error is irrelevant for label counts).
  uint64_t poisson(double lambda) {
    if (lambda <= 0.0) return 0;
    if (lambda < 30.0) {
      const double limit = det_exp(-lambda);
      uint64_t k = 0;
      double p = uniform_open();
      while (p > limit) {
        ++k;
        p *= uniform_open();
      }
      return k;
    }
    double v = std::floor(lambda + std::sqrt(lambda) * normal() + 0.5);
    return v < 0.0 ? 0 : static_cast<uint64_t>(v);
  }

 private:
  uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace synth
}  // namespace xmc
