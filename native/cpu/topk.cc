// Top-k labels per row, over bounded chunks of labels.
//
//   topK(scores[B,L], k, {labelOffset = 0})
//   denseTopK(x[B,I], W[L,I], b[L], k, {labelOffset = 0, chunk = 8192})
//   ffiTopK(x[B,I], W[L,k'], idx[L,k'], b[L], k, {labelOffset, chunk})
//   sparseTopK(x[B,I], rowPtr[L+1], col[nnz], W[nnz], b[L], k, {labelOffset, chunk})
//   -> Promise<{labels: Int32Array [B*k], scores: Float32Array [B*k]}>   (row-major [B, k])
//
// Row b lists the k labels with the highest score (the layer's pre-activation
// output, computed exactly as by denseForward / ffiForward / sparseForward),
// best first; equal scores: smaller label id first. Labels are global:
// labelOffset + l. When k > L the row is padded with label -1, score -Infinity.
// NaN scores rank below every number and are reported as -Infinity.
//
// The layer top-k ops never materialise [B, L]: they compute scores for
// `chunk` labels at a time into a [B, chunk] scratch block and merge it into
// one bounded min-heap per row (size k, root = the worst kept entry), so the
// memory is O(B * (chunk + k)). Chunks are computed with the forward kernels
// (parallel over labels); merging runs in parallel over rows.
//
// These are read-back ops: like tensor.read(), they settle a promise when they
// have run (in queue order), and a sticky error from an earlier op rejects them.
//
// Option int8TopK of the backend (the reference of the CUDA kernels' int8 top-k):
// with k <= 16 (the CUDA fused top-k's range, where the option applies there),
// ffiTopK and sparseTopK score by the integer arithmetic of
// native/common/int8_topk.h: each input row rounded to q = rint(x / s_b) clamped
// to [-127, 127], s_b = max |x[b, :]| / 127 (as the CUDA transpose_int8 does),
// each label's weights to 16 bits with a power-of-two scale, exact integer sums;
// the CUDA kernel computes the same integers and gives the same scores bit for
// bit. A row holding a NaN or an infinity scores NaN for every label (reported
// as -Infinity, labels in order).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "rowsparse.h"
#include "common/dense_args.h"
#include "common/int8_topk.h"

namespace xmc::cpu {
namespace {

// The CUDA backend's fused top-k takes k <= 16 (kFusedTopKMaxK, native/cuda/kernels.h); int8TopK applies there.
constexpr int64_t kInt8TopKMaxK = 16;

struct Entry {
  float score;
  int64_t label;
};
// a ranks above b
inline bool better(const Entry& a, const Entry& b) { return a.score > b.score || (a.score == b.score && a.label < b.label); }

class TopKHeaps {
 public:
  TopKHeaps(const std::shared_ptr<Allocator>& alloc, int64_t B, int64_t k)
      : k_(k), heap_(alloc, sizeof(Entry) * B * k), count_(static_cast<size_t>(B), 0) {}
  int64_t k() const { return k_; }

  // Offers labels l0 + c (c < n) with scores s[c] to row b's heap.
  void offer(int64_t b, const float* s, int64_t n, int64_t l0) {
    Entry* h = heap_.as<Entry>() + b * k_;
    int64_t& cnt = count_[b];
    for (int64_t c = 0; c < n; ++c) {
      Entry x{std::isnan(s[c]) ? -std::numeric_limits<float>::infinity() : s[c], l0 + c};
      if (cnt < k_) {
        int64_t i = cnt++;  // sift up: parents are better than children... inverted: root is the worst
        while (i > 0) {
          int64_t p = (i - 1) / 2;
          if (!better(h[p], x)) break;
          h[i] = h[p];
          i = p;
        }
        h[i] = x;
      } else if (better(x, h[0])) {
        int64_t i = 0;  // sift down from the root
        for (;;) {
          int64_t c1 = 2 * i + 1, c2 = c1 + 1, w = i;
          const Entry* cur = &x;
          if (c1 < k_ && better(*cur, h[c1])) { w = c1; cur = &h[c1]; }
          if (c2 < k_ && better(*cur, h[c2])) { w = c2; }
          if (w == i) break;
          h[i] = h[w];
          i = w;
        }
        h[i] = x;
      }
    }
  }

  void finish(int64_t b, int64_t offset, int32_t* labels, float* scores) {
    Entry* h = heap_.as<Entry>() + b * k_;
    const int64_t cnt = count_[b];
    std::sort(h, h + cnt, better);
    for (int64_t i = 0; i < k_; ++i) {
      labels[b * k_ + i] = i < cnt ? static_cast<int32_t>(h[i].label + offset) : -1;
      scores[b * k_ + i] = i < cnt ? h[i].score : -std::numeric_limits<float>::infinity();
    }
  }

 private:
  int64_t k_;
  Scratch heap_;
  std::vector<int64_t> count_;
};

struct TopKCall {
  int64_t k, offset, chunk;
  int32_t* labels;
  float* scores;
  Napi::Promise promise;
};

// Parses k and options, allocates the result arrays, enqueues `compute(heaps)`
// and then the merge of the heaps into the arrays.
Napi::Value enqueue_topk(const OpCall& call, int64_t B, int64_t L, size_t k_index, size_t opts_index,
                         std::function<void(TopKHeaps&, int64_t chunk)> compute) {
  Napi::Env env = call.env();
  const int64_t k = static_cast<int64_t>(call.number(k_index, "k", 1, 1 << 20, true));
  Napi::Object opts = call.options(opts_index);
  const int64_t offset = static_cast<int64_t>(call.option(opts, "labelOffset", 0.0, 0.0, 2147483647.0, true));
  const int64_t chunk = static_cast<int64_t>(call.option(opts, "chunk", 8192.0, 1.0, 2147483647.0, true));
  if (offset + L > 2147483648LL)
    call.range_error("labelOffset + L = " + std::to_string(offset + L) + " does not fit the int32 labels");
  Napi::ArrayBuffer lab = Napi::ArrayBuffer::New(env, sizeof(int32_t) * B * k);
  Napi::ArrayBuffer sc = Napi::ArrayBuffer::New(env, sizeof(float) * B * k);
  auto* labels = static_cast<int32_t*>(lab.Data());
  auto* scores = static_cast<float*>(sc.Data());
  auto lab_ref = std::make_shared<Napi::Reference<Napi::ArrayBuffer>>(Napi::Persistent(lab));
  auto sc_ref = std::make_shared<Napi::Reference<Napi::ArrayBuffer>>(Napi::Persistent(sc));
  return call.device().enqueue_settled(
      env, call.op(),
      [pool = call.pool(), alloc = call.allocator(), compute = std::move(compute), B, k, offset, chunk, labels, scores] {
        TopKHeaps heaps(alloc, B, k);
        compute(heaps, chunk);
        pool->parallel_for(B, 16, [&](int64_t b0, int64_t b1, int) {
          for (int64_t b = b0; b < b1; ++b) heaps.finish(b, offset, labels, scores);
        });
      },
      [lab_ref, sc_ref, n = static_cast<size_t>(B * k)](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("labels", Napi::Int32Array::New(e, n, lab_ref->Value(), 0));
        o.Set("scores", Napi::Float32Array::New(e, n, sc_ref->Value(), 0));
        return o;
      });
}

// Merges a [B, n] block (row stride ld) of labels [l0, l0 + n) into the heaps, rows in parallel.
void offer_block(ThreadPool& pool, TopKHeaps& heaps, const float* block, int64_t B, int64_t n, int64_t ld, int64_t l0) {
  pool.parallel_for(B, 1, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) heaps.offer(b, block + b * ld, n, l0);
  });
}

Napi::Value TopK(const Napi::CallbackInfo& info) {
  OpCall call(info, "topK");
  Tensor scores = call.tensor(1, "scores");
  call.expect_dtype(scores, "scores", DType::Float32);
  call.expect_shape(scores, "scores", {-1, -1}, "[B, L]");
  const int64_t B = scores.dim(0), L = scores.dim(1);
  return enqueue_topk(call, B, L, 2, 3, [pool = call.pool(), scores, B, L](TopKHeaps& heaps, int64_t) {
    offer_block(*pool, heaps, scores.data<float>(), B, L, L, 0);
  });
}

Napi::Value DenseTopK(const Napi::CallbackInfo& info) {
  OpCall call(info, "denseTopK");
  Tensor x = call.tensor(1, "x"), W = call.tensor(2, "W"), b = call.tensor(3, "b");
  const common::DenseDims d = common::dense_topk_arguments(call, x, W, b);
  const int64_t B = d.B, I = d.I, L = d.O;
  return enqueue_topk(call, B, L, 4, 5,
                      [pool = call.pool(), alloc = call.allocator(), x, W, b, B, I, L](TopKHeaps& heaps, int64_t chunk) {
                        const int64_t C = std::min(chunk, std::max<int64_t>(L, 1));
                        Scratch block(alloc, sizeof(float) * B * C);
                        float* s = block.as<float>();
                        for (int64_t l0 = 0; l0 < L; l0 += C) {
                          const int64_t n = std::min(C, L - l0);
                          parallel_sgemm(*pool, false, true, B, n, I, 1.0f, x.data<float>(), I, W.data<float>() + l0 * I, I,
                                         0.0f, s, n);
                          const float* bias = b.data<float>() + l0;
                          for (int64_t r = 0; r < B; ++r)
                            for (int64_t j = 0; j < n; ++j) s[r * n + j] += bias[j];
                          offer_block(*pool, heaps, s, B, n, n, l0);
                        }
                      });
}

// The int8 inputs: qT [I, B] (transposed: a label's connection reads one contiguous run of the batch) and
// the row scales s_b (NaN for a row holding a NaN or an infinity: every score of the row is then NaN).
void quantize_int8_rows(ThreadPool& pool, const float* x, int64_t B, int64_t I, int8_t* qT, float* scale) {
  pool.parallel_for(B, 1, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) {
      const float* row = x + b * I;
      AbsMax am;
      for (int64_t i = 0; i < I; ++i) am.add(row[i]);
      const float s = am.m / 127.0f;
      scale[b] = am.finite ? s : std::numeric_limits<float>::quiet_NaN();
      for (int64_t i = 0; i < I; ++i) {
        const float q = am.finite && s > 0.0f ? std::fmin(std::fmax(std::rint(row[i] / s), -127.0f), 127.0f) : 0.0f;
        qT[i * B + b] = static_cast<int8_t>(q);
      }
    }
  });
}

// int8 scores of labels [l0, l1): out[b * ldo + (l - l0)] (native/common/int8_topk.h).
void int8_scores(ThreadPool& pool, const RowSparse& rows, const float* bias, const int8_t* qT, const float* scale,
                 int64_t B, int64_t l0, int64_t l1, float* out, int64_t ldo) {
  pool.parallel_for(l1 - l0, 16, [&](int64_t t0, int64_t t1, int) {
    std::vector<int32_t> acc_hi(static_cast<size_t>(B)), acc_lo(static_cast<size_t>(B));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t l = l0 + t, e0 = rows.begin(l), e1 = rows.end(l);
      AbsMax am;
      for (int64_t e = e0; e < e1; ++e) am.add(rows.weight[e]);
      const float label_scale = int8_weight_scale(am.m, am.finite);
      std::fill(acc_hi.begin(), acc_hi.end(), 0);
      std::fill(acc_lo.begin(), acc_lo.end(), 0);
      for (int64_t e = e0; e < e1; ++e) {
        int hi, lo;
        int8_weight_bytes(rows.weight[e], label_scale, hi, lo);
        const int8_t* col = qT + static_cast<int64_t>(rows.src[e]) * B;
        for (int64_t b = 0; b < B; ++b) {
          acc_hi[b] += col[b] * hi;
          acc_lo[b] += col[b] * lo;
        }
      }
      const float bl = bias ? bias[l] : 0.0f;
      for (int64_t b = 0; b < B; ++b) out[b * ldo + t] = int8_score(acc_hi[b], acc_lo[b], label_scale, scale[b], bl);
    }
  });
}

// Chunked top-k of a row-sparse layer (FFI or CSR): `validate` runs first. int8: the int8TopK option.
void rowsparse_topk(ThreadPool& pool, const std::shared_ptr<Allocator>& alloc, TopKHeaps& heaps, const RowSparse& rows,
                    const float* bias, const float* x, int64_t B, int64_t I, int64_t L, int64_t chunk, bool int8) {
  const int64_t C = std::min(chunk, std::max<int64_t>(L, 1));
  Scratch block(alloc, sizeof(float) * B * C);
  if (int8 && heaps.k() <= kInt8TopKMaxK) {
    Scratch qT(alloc, std::max<int64_t>(1, B * I));
    std::vector<float> scale(static_cast<size_t>(B));
    quantize_int8_rows(pool, x, B, I, qT.as<int8_t>(), scale.data());
    for (int64_t l0 = 0; l0 < L; l0 += C) {
      const int64_t n = std::min(C, L - l0);
      int8_scores(pool, rows, bias, qT.as<int8_t>(), scale.data(), B, l0, l0 + n, block.as<float>(), n);
      offer_block(pool, heaps, block.as<float>(), B, n, n, l0);
    }
    return;
  }
  TransposedInput xT(pool, alloc, x, B, I);
  for (int64_t l0 = 0; l0 < L; l0 += C) {
    const int64_t n = std::min(C, L - l0);
    float* s = block.as<float>();
    rowsparse_forward(pool, alloc, rows, bias, xT.data(), B, l0, l0 + n, s, n);
    offer_block(pool, heaps, s, B, n, n, l0);
  }
}

Napi::Value FfiTopK(const Napi::CallbackInfo& info) {
  OpCall call(info, "ffiTopK");
  Tensor x = call.tensor(1, "x"), W = call.tensor(2, "W"), idx = call.tensor(3, "idx"), b = call.tensor(4, "b");
  call.expect_dtype(x, "x", DType::Float32);
  call.expect_shape(x, "x", {-1, -1}, "[B, I]");
  const int64_t B = x.dim(0), I = x.dim(1);
  auto [L, fan_in] = check_ffi_layer(call, W, idx, &b);
  return enqueue_topk(call, B, L, 5, 6,
                      [pool = call.pool(), alloc = call.allocator(), int8 = call.device().int8_topk(), x, W, idx, b, B, I,
                       L = L, fan_in = fan_in](TopKHeaps& heaps, int64_t chunk) {
                        validate_ffi_idx(*pool, idx, fan_in, I);
                        RowSparse rows{nullptr, fan_in, idx.data<uint32_t>(), W.data<float>()};
                        rowsparse_topk(*pool, alloc, heaps, rows, b.data<float>(), x.data<float>(), B, I, L, chunk, int8);
                      });
}

Napi::Value SparseTopK(const Napi::CallbackInfo& info) {
  OpCall call(info, "sparseTopK");
  Tensor x = call.tensor(1, "x"), rowPtr = call.tensor(2, "rowPtr"), col = call.tensor(3, "col"), W = call.tensor(4, "W"),
         b = call.tensor(5, "b");
  call.expect_dtype(x, "x", DType::Float32);
  call.expect_shape(x, "x", {-1, -1}, "[B, I]");
  const int64_t B = x.dim(0), I = x.dim(1);
  auto [L, nnz] = check_csr_layer(call, rowPtr, col, W, &b);
  return enqueue_topk(call, B, L, 6, 7,
                      [pool = call.pool(), alloc = call.allocator(), int8 = call.device().int8_topk(), x, rowPtr, col, W, b,
                       B, I, L = L, nnz = nnz](TopKHeaps& heaps, int64_t chunk) {
                        validate_csr(*pool, rowPtr, L, col, nnz, I);
                        RowSparse rows{rowPtr.data<uint32_t>(), 0, col.data<uint32_t>(), W.data<float>()};
                        rowsparse_topk(*pool, alloc, heaps, rows, b.data<float>(), x.data<float>(), B, I, L, chunk, int8);
                      });
}

}  // namespace
}  // namespace xmc::cpu

namespace xmc {
void register_topk(Napi::Env env, Napi::Object exports) {
  exports.Set("topK", Napi::Function::New(env, cpu::TopK, "topK"));
  exports.Set("denseTopK", Napi::Function::New(env, cpu::DenseTopK, "denseTopK"));
  exports.Set("ffiTopK", Napi::Function::New(env, cpu::FfiTopK, "ffiTopK"));
  exports.Set("sparseTopK", Napi::Function::New(env, cpu::SparseTopK, "sparseTopK"));
}
}  // namespace xmc
