// Elementary functions for the synthetic data generator, written with only
// IEEE-754 double +, -, *, / and sqrt (each correctly rounded), so that they
// give the same bits on every machine and with every libm. The system libm
// picks CPU-specific code paths at load time (glibc: FMA or not), which may
// differ in the last bit; one such bit can flip a rejection-sampling decision
// and change a whole point. With these, a data set regenerated on another host
// (say a GPU node with no data copied in) is byte-identical.
//
// Accuracy: a few ulp over the ranges used here (checked against libm by
// test/synth-math.test.ts through synthMathCheck), far below what float16 or
// float32 output keeps. No fused multiply-add may be formed from these
// expressions (nor from the generator's other arithmetic), or the bits would
// depend on the target.
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>

// Contraction is only possible where the target has FMA (__FP_FAST_FMA: e.g.
// aarch64, or x86-64 with -march=haswell and later); x86-64 baseline has none.
#if defined(__FP_FAST_FMA)
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#endif

namespace xmc {
namespace synth {

inline uint64_t double_bits(double x) {
  uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}
inline double bits_double(uint64_t b) {
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

// ln 2 split so that k * kLn2Hi is exact for |k| < 2^20.
constexpr double kLn2Hi = 6.93147180369123816490e-01;
constexpr double kLn2Lo = 1.90821492927058770002e-10;
constexpr double kInvLn2 = 1.44269504088896338700e+00;

// exp(x): x = k ln2 + r with |r| <= ln2/2, exp(r) by its Taylor series to r^14
// (truncation below 1e-17 relative), then scaled by 2^k through the exponent bits.
inline double det_exp(double x) {
  if (x != x) return x;
  if (x > 709.78) return std::numeric_limits<double>::infinity();
  if (x < -745.2) return 0.0;
  const double kf = __builtin_floor(x * kInvLn2 + 0.5);
  const int k = static_cast<int>(kf);
  const double r = (x - kf * kLn2Hi) - kf * kLn2Lo;
  double p = 1.0 / 87178291200.0;  // 1/14!
  p = 1.0 / 6227020800.0 + r * p;  // 1/13!
  p = 1.0 / 479001600.0 + r * p;
  p = 1.0 / 39916800.0 + r * p;
  p = 1.0 / 3628800.0 + r * p;
  p = 1.0 / 362880.0 + r * p;
  p = 1.0 / 40320.0 + r * p;
  p = 1.0 / 5040.0 + r * p;
  p = 1.0 / 720.0 + r * p;
  p = 1.0 / 120.0 + r * p;
  p = 1.0 / 24.0 + r * p;
  p = 1.0 / 6.0 + r * p;
  p = 0.5 + r * p;
  p = 1.0 + r * p;
  p = 1.0 + r * p;
  // 2^k in two steps when k is outside the normal exponent range
  if (k < -1021) return p * bits_double(static_cast<uint64_t>(k + 1023 + 64) << 52) * 0x1.0p-64;
  if (k > 1023) return p * 2.0 * bits_double(static_cast<uint64_t>(k - 1 + 1023) << 52);
  return p * bits_double(static_cast<uint64_t>(k + 1023) << 52);
}

// log(x) for x > 0: x = 2^e m with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(f),
// f = (m-1)/(m+1), |f| <= 0.1716, by its series to f^25 (truncation < 1e-20).
inline double det_log(double x) {
  if (!(x > 0.0)) return x == 0.0 ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  if (x == std::numeric_limits<double>::infinity()) return x;
  int e = 0;
  if (x < 0x1.0p-1022) {  // subnormal: make it normal first
    x *= 0x1.0p54;
    e = -54;
  }
  const uint64_t b = double_bits(x);
  e += static_cast<int>((b >> 52) & 0x7FF) - 1023;
  double m = bits_double((b & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL);  // [1, 2)
  if (m > 1.41421356237309504880) {
    m *= 0.5;
    e += 1;
  }
  const double f = (m - 1.0) / (m + 1.0);
  const double s = f * f;
  double p = 1.0 / 25.0;
  p = 1.0 / 23.0 + s * p;
  p = 1.0 / 21.0 + s * p;
  p = 1.0 / 19.0 + s * p;
  p = 1.0 / 17.0 + s * p;
  p = 1.0 / 15.0 + s * p;
  p = 1.0 / 13.0 + s * p;
  p = 1.0 / 11.0 + s * p;
  p = 1.0 / 9.0 + s * p;
  p = 1.0 / 7.0 + s * p;
  p = 1.0 / 5.0 + s * p;
  p = 1.0 / 3.0 + s * p;
  const double ef = static_cast<double>(e);
  // 2f(1 + s p) = 2f + 2f s p: the small correction added last keeps the error near 1 ulp
  return ef * kLn2Hi + ((2.0 * f) + ((2.0 * f) * (s * p) + ef * kLn2Lo));
}

// tanh(x): odd Taylor series near 0, (1 - e)/(1 + e) with e = exp(-2|x|) elsewhere.
inline double det_tanh(double x) {
  const double a = x < 0.0 ? -x : x;
  double t;
  if (a < 0x1.0p-4) {
    const double s = a * a;  // series to a^11: truncation < 1e-15 relative at a = 1/16
    double p = -1382.0 / 155925.0;
    p = 62.0 / 2835.0 + s * p;
    p = -17.0 / 315.0 + s * p;
    p = 2.0 / 15.0 + s * p;
    p = -1.0 / 3.0 + s * p;
    t = a + a * (s * p);
  } else if (a > 22.0) {
    t = 1.0;
  } else {
    const double e = det_exp(-2.0 * a);
    t = (1.0 - e) / (1.0 + e);
  }
  return x < 0.0 ? -t : t;
}

// x^y for x > 0.
inline double det_pow(double x, double y) { return det_exp(y * det_log(x)); }

}  // namespace synth
}  // namespace xmc
