// The arithmetic of the int8 top-k (backend option int8TopK), shared by the
// CPU reference (native/cpu/topk.cc) and the CUDA kernel (native/cuda/rowsparse.cu)
// so that both compute the same integers and round them the same way.
//
//   inputs   row b of x [B, I]: q[b, i] = clamp(rint(x[b, i] / s_b), -127, 127),
//            s_b = max_i |x[b, i]| / 127 (NaN where the row holds a NaN or an infinity)
//   weights  label l's connections: W16[e] = rint(w[e] / 2^e_l), |W16| <= kInt8WeightMax,
//            e_l the smallest exponent with max_e |w[e]| <= kInt8WeightMax 2^e_l (a power-of-two
//            scale, so that W16 = w 2^-e_l is exact wherever w has few enough significant bits);
//            split into signed bytes W16 = 256 hi + lo, hi, lo in [-128, 127]
//   score    acc_hi = sum_e q[b, src[e]] hi[e], acc_lo = sum_e q[b, src[e]] lo[e] (int32, exact),
//            v = float(256 acc_hi + acc_lo) 2^e_l (one rounding), score = fma(s_b, v, bias[l])
//
// The weights' 16-bit rounding (relative 2^-15 of the label's largest weight) is far below the
// inputs' 8-bit one; the sums are exact integers, so the CUDA kernel's order of summation does
// not change a result.
#pragma once

#include <cmath>
#include <cstdint>

#include "hd.h"

namespace xmc {

// The running max |v| and whether every v was finite: what the scales are made from (a row of x, a
// label's weights).
struct AbsMax {
  float m = 0.0f;
  bool finite = true;
  XMC_HD void add(float v) {
    const float a = fabsf(v);
    finite = finite && a <= 3.402823466e38f;  // false for NaN and infinity
    m = fmaxf(m, a);
  }
};

// Largest |W16|: 127 * 256 + 127, so that hi = (W16 + 128) >> 8 stays within a signed byte.
constexpr int kInt8WeightMax = 32639;

// The label's scale 2^e_l from the largest |w| of its connections (m >= 0); NaN when some weight
// is not finite (the caller's `finite`), 0 for an all-zero label (then every W16 is 0).
XMC_HD inline float int8_weight_scale(float m, bool finite) {
  if (!finite) return NAN;
  if (!(m > 0.0f)) return 0.0f;
  int E = 0;
  frexpf(m, &E);  // m = f 2^E, f in [0.5, 1): m / 2^(E - 15) < 32768
  int e = E - 15;
  if (m > ldexpf(static_cast<float>(kInt8WeightMax), e)) e += 1;
  return ldexpf(1.0f, e);
}

// W16 = rint(w / scale) as the bytes hi, lo (W16 = 256 hi + lo); 0 where scale is 0 or NaN.
XMC_HD inline void int8_weight_bytes(float w, float scale, int& hi, int& lo) {
  int q = 0;
  if (scale > 0.0f) {
    const float r = rintf(w / scale);
    q = static_cast<int>(fminf(fmaxf(r, -static_cast<float>(kInt8WeightMax)), static_cast<float>(kInt8WeightMax)));
  }
  hi = (q + 128) >> 8;  // arithmetic shift: floor
  lo = q - 256 * hi;    // in [-128, 127]
}

// The score from the exact sums (see the top).
XMC_HD inline float int8_score(int32_t acc_hi, int32_t acc_lo, float label_scale, float row_scale, float bias) {
  const float v = static_cast<float>(256 * static_cast<int64_t>(acc_hi) + acc_lo) * label_scale;
  return fmaf(row_scale, v, bias);
}

}  // namespace xmc
