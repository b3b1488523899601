// The per-element arithmetic of the multi-label losses (formulas: loss.cc)
// and the label-list handling that lossForward (loss.cc) and the fused
// ffiLossBackward (ffi.cc, rowsparse.cc) share, so that both produce the same
// gradient bit for bit.
//
// Every (b, l) is first treated as a negative (y = 0): negative_term gives its
// loss and unscaled gradient; the few positives are then corrected with
// positive_fix (loss difference y = 1 minus y = 0, and the y = 1 gradient).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "backend.h"
#include "common/loss_args.h"

namespace xmc::cpu {

enum class LossKind { SquaredHinge, Bce };

inline float softplus(float s) { return std::max(s, 0.0f) + std::log1p(std::exp(-std::fabs(s))); }
inline float sigmoid(float s) {
  const float e = std::exp(-std::fabs(s));
  return s >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

// Loss difference (y = 1 minus y = 0) and the y = 1 gradient (unscaled) at score s.
inline void positive_fix(LossKind kind, float s, double* loss_delta, float* grad) {
  if (kind == LossKind::SquaredHinge) {
    const double m0 = std::max(0.0, 1.0 + s), m1 = std::max(0.0, 1.0 - s);
    *loss_delta = m1 * m1 - m0 * m0;
    *grad = static_cast<float>(-2.0 * m1);
  } else {
    *loss_delta = -static_cast<double>(s);  // softplus(s) - s - softplus(s)
    *grad = -sigmoid(-s);                    // sigmoid(s) - 1, without cancellation
  }
}

// The y = 0 pass over n contiguous scores: writes the scaled gradients to d
// (may be s itself; null: none) and returns their summed loss (unscaled).
double negative_pass(LossKind kind, const float* s, float* d, int64_t n, float scale);

// Run time: labelPtr[0] = 0, non-decreasing, labelPtr[B] <= nids; else OpError.
inline void validate_label_ptr(const uint32_t* lp, int64_t B, int64_t nids) {
  if (lp[0] != 0) throw OpError(common::label_ptr_error(1, lp[0], 0, nids));
  for (int64_t b = 0; b < B; ++b)
    if (lp[b + 1] < lp[b]) throw OpError(common::label_ptr_error(2, 0, b, nids));
  if (static_cast<int64_t>(lp[B]) > nids) throw OpError(common::label_ptr_error(3, lp[B], B, nids));
}

// Row b's positives of this shard: the distinct local labels (id - offset in
// [0, L)) of its list, sorted. `out` is reused.
inline void row_positives(const uint32_t* lp, const uint32_t* ids, int64_t b, int64_t offset, int64_t L,
                          std::vector<uint32_t>& out) {
  out.clear();
  for (uint32_t e = lp[b]; e < lp[b + 1]; ++e) {
    const int64_t local = static_cast<int64_t>(ids[e]) - offset;
    if (local >= 0 && local < L) out.push_back(static_cast<uint32_t>(local));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

}  // namespace xmc::cpu
