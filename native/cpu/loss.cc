// Multi-label losses fused with their gradient, from sparse label lists.
//
//   lossForward(scores[B,L], labelPtr[B+1], labelIds[nnz], dScores[B,L] | null, loss[1],
//               {kind = 'squared-hinge' | 'bce', labelOffset = 0, normaliser = L})
//
// Targets: y[b, l] = 1 iff (labelOffset + l) is in row b's label list
//   labelIds[labelPtr[b] .. labelPtr[b+1]) (global label ids; ids outside
//   [labelOffset, labelOffset + L) belong to other shards and are ignored,
//   duplicates count once). No dense [B, L] target is ever built.
//
//   squared hinge (the paper's default):  l(s, y) = max(0, 1 - (2y - 1) s)^2
//   binary cross-entropy with logits:     l(s, y) = softplus(s) - y s
//                                         (softplus(s) = max(s, 0) + log1p(exp(-|s|)), stable)
//
//   loss[0]       = sum_{b, l} l(s[b,l], y[b,l]) / (B * normaliser)
//   dScores[b, l] = dl/ds(s[b,l], y[b,l]) / (B * normaliser)
//
// With normaliser = the total label count, S label shards (each with its own
// labelOffset and L_s) give exactly the unsharded gradient, and their loss
// values sum to the unsharded loss.
//
// dScores may be the scores tensor itself (in place: saves a [B, L] buffer).
// Layout: scores/dScores [B, L] row-major; labels are a batch CSR (uint32 or
// int32): labelPtr[0] = 0, non-decreasing, labelPtr[B] <= nnz (checked at run time).
//
// Each row: one vectorised pass with y = 0 everywhere, then a correction at the
// row's (few) positive labels, whose scores are saved before the pass so that
// the in-place form works. Rows run in parallel; the per-row losses are summed
// in double, in row order (deterministic).
#include <algorithm>
#include <cmath>

#include "loss_math.h"

namespace xmc::cpu {

// The y = 0 pass over one row; returns the row's summed loss. d may be null.
XMC_CLONES double negative_pass(LossKind kind, const float* s, float* d, int64_t L, float scale) {
  double total = 0.0;
  constexpr int64_t kChunk = 512;
  for (int64_t c0 = 0; c0 < L; c0 += kChunk) {
    const int64_t c1 = std::min(L, c0 + kChunk);
    float acc = 0.0f;
    if (kind == LossKind::SquaredHinge) {
      float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t i = c0;
      for (; i + 8 <= c1; i += 8)
        for (int j = 0; j < 8; ++j) {
          const float m = std::max(0.0f, 1.0f + s[i + j]);
          lanes[j] += m * m;
          if (d) d[i + j] = 2.0f * m * scale;
        }
      for (; i < c1; ++i) {
        const float m = std::max(0.0f, 1.0f + s[i]);
        acc += m * m;
        if (d) d[i] = 2.0f * m * scale;
      }
      for (int j = 0; j < 8; ++j) acc += lanes[j];
    } else {
      for (int64_t i = c0; i < c1; ++i) {
        const float v = s[i];
        acc += softplus(v);
        if (d) d[i] = sigmoid(v) * scale;
      }
    }
    total += acc;
  }
  return total;
}

namespace {


Napi::Value LossForward(const Napi::CallbackInfo& info) {
  OpCall call(info, "lossForward");
  Tensor scores = call.tensor(1, "scores"), labelPtr = call.tensor(2, "labelPtr"), labelIds = call.tensor(3, "labelIds");
  std::optional<Tensor> dScores = call.optional_tensor(4, "dScores");
  Tensor loss = call.tensor(5, "loss");
  Napi::Object opts = call.options(6);
  const common::LossShape sh = common::loss_forward_arguments(call, scores, labelPtr, labelIds, dScores, loss, opts);
  const int64_t B = sh.B, L = sh.L;
  const common::LossOptions o = sh.loss;
  const LossKind kind = o.bce ? LossKind::Bce : LossKind::SquaredHinge;
  const int64_t offset = o.label_offset;
  const double normaliser = o.normaliser;

  call.enqueue([pool = call.pool(), scores, labelPtr, labelIds, dScores, loss, B, L, kind, offset, normaliser] {
    const uint32_t* lp = labelPtr.data<uint32_t>();
    const uint32_t* ids = labelIds.data<uint32_t>();
    validate_label_ptr(lp, B, labelIds.size);
    const float* s = scores.data<float>();
    float* d = dScores ? dScores->data<float>() : nullptr;
    const double inv = B > 0 ? 1.0 / (static_cast<double>(B) * normaliser) : 0.0;
    const float scale = static_cast<float>(inv);
    std::vector<double> row_loss(static_cast<size_t>(B), 0.0);
    std::vector<std::vector<uint32_t>> positives(static_cast<size_t>(pool->size()));
    std::vector<std::vector<float>> saved(static_cast<size_t>(pool->size()));
    pool->parallel_for(B, 1, [&](int64_t b0, int64_t b1, int tid) {
      auto& pos = positives[tid];
      auto& keep = saved[tid];
      for (int64_t b = b0; b < b1; ++b) {
        row_positives(lp, ids, b, offset, L, pos);
        const float* sr = s + b * L;
        float* dr = d ? d + b * L : nullptr;
        keep.resize(pos.size());
        for (size_t j = 0; j < pos.size(); ++j) keep[j] = sr[pos[j]];
        double acc = negative_pass(kind, sr, dr, L, scale);
        for (size_t j = 0; j < pos.size(); ++j) {
          double delta;
          float grad;
          positive_fix(kind, keep[j], &delta, &grad);
          acc += delta;
          if (dr) dr[pos[j]] = grad * scale;
        }
        row_loss[b] = acc;
      }
    });
    double total = 0.0;
    for (double v : row_loss) total += v;
    loss.data<float>()[0] = static_cast<float>(total * inv);
  });
  return info.Env().Undefined();
}

}  // namespace
}  // namespace xmc::cpu

namespace xmc {
void register_loss(Napi::Env env, Napi::Object exports) {
  exports.Set("lossForward", Napi::Function::New(env, cpu::LossForward, "lossForward"));
}
}  // namespace xmc
