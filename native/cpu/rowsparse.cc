// Row-sparse layer kernels shared by FFI and CSR layers: formulas, layout and
// the handling of the dX scatter races are described in rowsparse.h.
#include "rowsparse.h"

// v8 values only live inside inlined helpers: the note about their ABI when
// passed to non-inlined functions does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include <algorithm>
#include <cstring>

namespace xmc::cpu {

// The hot loops run over the batch dimension in 8-float vectors (GCC/clang
// vector extensions: AVX in the haswell clone, two SSE halves otherwise),
// 4 vectors at a time when B >= 32, so that a row of xT / dXT is handled with
// a few loads and FMAs and the accumulators stay in registers. Sums are
// reduced in a fixed order: results do not depend on threads or chunking.
typedef float v8 __attribute__((vector_size(32)));
static inline v8 load8(const float* p) {
  v8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
static inline void store8(float* p, v8 v) { std::memcpy(p, &v, sizeof v); }
static inline float hsum8(v8 v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }

static inline float sum_of(const float* a, int64_t n) {
  v8 acc = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc += load8(a + i);
  float s = hsum8(acc);
  for (; i < n; ++i) s += a[i];
  return s;
}

// One tile of labels [la, lb) without bias: acc [lb - la, B] (label-major) = sum_e W[e] * xT[src[e], :].
XMC_CLONES static void accumulate_tile(const RowSparse& rows, const float* xT, int64_t B, int64_t la, int64_t lb,
                                       float* acc) {
  for (int64_t l = la; l < lb; ++l) {
    float* a = acc + (l - la) * B;
    const int64_t e0 = rows.begin(l), e1 = rows.end(l);
    int64_t b0 = 0;
    for (; b0 + 32 <= B; b0 += 32) {
      v8 s0 = {}, s1 = {}, s2 = {}, s3 = {};
      for (int64_t e = e0; e < e1; ++e) {
        const float w = rows.weight[e];
        const float* xs = xT + static_cast<int64_t>(rows.src[e]) * B + b0;
        s0 += w * load8(xs);
        s1 += w * load8(xs + 8);
        s2 += w * load8(xs + 16);
        s3 += w * load8(xs + 24);
      }
      store8(a + b0, s0);
      store8(a + b0 + 8, s1);
      store8(a + b0 + 16, s2);
      store8(a + b0 + 24, s3);
    }
    for (; b0 + 8 <= B; b0 += 8) {
      v8 s0 = {};
      for (int64_t e = e0; e < e1; ++e) s0 += rows.weight[e] * load8(xT + static_cast<int64_t>(rows.src[e]) * B + b0);
      store8(a + b0, s0);
    }
    for (; b0 < B; ++b0) {
      float s0 = 0.0f;
      for (int64_t e = e0; e < e1; ++e) s0 += rows.weight[e] * xT[static_cast<int64_t>(rows.src[e]) * B + b0];
      a[b0] = s0;
    }
  }
}

// One tile of labels [la, lb): acc is [lb - la, B] scratch, out points at label la.
static void forward_tile(const RowSparse& rows, const float* bias, const float* xT, int64_t B, int64_t la, int64_t lb,
                         float* acc, float* out, int64_t ldo) {
  accumulate_tile(rows, xT, B, la, lb, acc);
  for (int64_t b = 0; b < B; ++b) {
    float* o = out + b * ldo;
    for (int64_t l = la; l < lb; ++l) o[l - la] = acc[(l - la) * B + b] + (bias ? bias[l] : 0.0f);
  }
}

void rowsparse_forward(ThreadPool& pool, const std::shared_ptr<Allocator>& alloc, const RowSparse& rows,
                       const float* bias, const float* xT, int64_t B, int64_t l0, int64_t l1, float* out, int64_t ldo) {
  const int64_t tiles = (l1 - l0 + kLabelTile - 1) / kLabelTile;
  if (tiles <= 0 || B <= 0) return;
  Scratch acc(alloc, sizeof(float) * pool.size() * kLabelTile * B);
  pool.parallel_for(tiles, 4, [&](int64_t t0, int64_t t1, int tid) {
    float* a = acc.as<float>() + tid * kLabelTile * B;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t la = l0 + t * kLabelTile, lb = std::min(l1, la + kLabelTile);
      forward_tile(rows, bias, xT, B, la, lb, a, out + (la - l0), ldo);
    }
  });
}

// The dOut tile of labels [la, lb), transposed into g [lb - la, B].
static void gather_gradient_tile(const float* dOut, int64_t B, int64_t L, int64_t la, int64_t lb, float* g) {
  for (int64_t b = 0; b < B; ++b) {
    const float* d = dOut + b * L;
    // The next tile's part of this row: B rows a page apart defeat the hardware prefetcher.
    for (int64_t l = lb; l < std::min(L, lb + kLabelTile); l += 16) __builtin_prefetch(d + l);
    for (int64_t l = la; l < lb; ++l) g[(l - la) * B + b] = d[l];
  }
}

// One tile of labels [la, lb) of the backward from its gradient g [lb - la, B];
// part is this thread's dXT partial [I, B] or null.
XMC_CLONES static void backward_tile(const RowSparse& rows, const float* xT, int64_t B, int64_t la, int64_t lb,
                                     const float* g, float* part, float* dW, float* dB) {
  for (int64_t l = la; l < lb; ++l) {
    const float* gl = g + (l - la) * B;
    dB[l] = sum_of(gl, B);
    const int64_t e0 = rows.begin(l), e1 = rows.end(l);
    for (int64_t e = e0; e < e1; ++e) {
      const int64_t s = rows.src[e];
      const float* xs = xT + s * B;
      float* ps = part ? part + s * B : nullptr;
      const float w = rows.weight[e];
      v8 d0 = {}, d1 = {}, d2 = {}, d3 = {};
      int64_t b0 = 0;
      for (; b0 + 32 <= B; b0 += 32) {
        const v8 g0 = load8(gl + b0), g1 = load8(gl + b0 + 8), g2 = load8(gl + b0 + 16), g3 = load8(gl + b0 + 24);
        d0 += g0 * load8(xs + b0);
        d1 += g1 * load8(xs + b0 + 8);
        d2 += g2 * load8(xs + b0 + 16);
        d3 += g3 * load8(xs + b0 + 24);
        if (ps) {
          store8(ps + b0, load8(ps + b0) + w * g0);
          store8(ps + b0 + 8, load8(ps + b0 + 8) + w * g1);
          store8(ps + b0 + 16, load8(ps + b0 + 16) + w * g2);
          store8(ps + b0 + 24, load8(ps + b0 + 24) + w * g3);
        }
      }
      for (; b0 + 8 <= B; b0 += 8) {
        const v8 g0 = load8(gl + b0);
        d0 += g0 * load8(xs + b0);
        if (ps) store8(ps + b0, load8(ps + b0) + w * g0);
      }
      float dot = hsum8((d0 + d1) + (d2 + d3));
      for (; b0 < B; ++b0) {
        dot += gl[b0] * xs[b0];
        if (ps) ps[b0] += w * gl[b0];
      }
      dW[e] = dot;
    }
  }
}

// dX [B, I] = sum over the P partials [I, B], transposed. One block of 64 inputs at a time.
XMC_CLONES static void reduce_partials(const float* partials, int P, int64_t I, int64_t B, int64_t i0, int64_t i1,
                                       float* tmp, float* dX) {
  const int64_t n = (i1 - i0) * B;
  std::copy(partials + i0 * B, partials + i0 * B + n, tmp);
  for (int p = 1; p < P; ++p) {
    const float* src = partials + static_cast<int64_t>(p) * I * B + i0 * B;
    for (int64_t j = 0; j < n; ++j) tmp[j] += src[j];
  }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = i0; i < i1; ++i) dX[b * I + i] = tmp[(i - i0) * B + b];
}

// The backward's scaffold: label partitions (one per thread), per-thread dXT
// partials, and their reduction into dX. `tile_gradient(la, lb, g)` fills g
// [lb - la, B] with dLoss/dOut of a tile and returns the tile's loss
// contribution; the contributions are summed per partition in label order,
// then over partitions in order, and returned.
template <class TileGradient>
static double partitioned_backward(ThreadPool& pool, const std::shared_ptr<Allocator>& alloc, const RowSparse& rows,
                                   int64_t L, int64_t I, const float* xT, int64_t B, float* dX, float* dW, float* dB,
                                   const TileGradient& tile_gradient) {
  const int T = pool.size();
  int P = T;  // label partitions (= threads doing work)
  const size_t partial_bytes = sizeof(float) * static_cast<size_t>(I) * static_cast<size_t>(B);
  if (dX && partial_bytes > 0)
    P = static_cast<int>(std::clamp<size_t>(kPartialBudgetBytes / partial_bytes, 1, static_cast<size_t>(T)));
  if (B == 0) {  // no rows: gradients are zero sums
    std::fill(dB, dB + L, 0.0f);
    if (L > 0) std::fill(dW, dW + rows.end(L - 1), 0.0f);
    return 0.0;
  }
  const int64_t nnz = L > 0 ? rows.end(L - 1) : 0;
  // Contiguous label ranges with near-equal numbers of connections.
  std::vector<int64_t> bounds(P + 1);
  for (int p = 0; p <= P; ++p) {
    if (!rows.row_ptr) {
      bounds[p] = p == P ? L : static_range(L, P, p).first;
    } else {
      const uint64_t target = static_cast<uint64_t>(nnz) * p / P;
      bounds[p] = p == P ? L : std::lower_bound(rows.row_ptr, rows.row_ptr + L, static_cast<uint32_t>(target)) - rows.row_ptr;
    }
  }
  std::optional<Scratch> partials;
  if (dX) partials.emplace(alloc, partial_bytes * P);
  Scratch g(alloc, sizeof(float) * T * kLabelTile * B);
  std::vector<double> partition_loss(static_cast<size_t>(P), 0.0);
  pool.run([&](int tid) {
    if (tid >= P) return;
    float* part = nullptr;
    if (dX) {
      part = partials->as<float>() + static_cast<int64_t>(tid) * I * B;
      std::fill(part, part + I * B, 0.0f);
    }
    float* gt = g.as<float>() + tid * kLabelTile * B;
    double loss = 0.0;
    for (int64_t la = bounds[tid]; la < bounds[tid + 1]; la += kLabelTile) {
      const int64_t lb = std::min(bounds[tid + 1], la + kLabelTile);
      loss += tile_gradient(la, lb, gt);
      backward_tile(rows, xT, B, la, lb, gt, part, dW, dB);
    }
    partition_loss[tid] = loss;
  });
  double total = 0.0;
  for (double v : partition_loss) total += v;
  if (!dX) return total;
  constexpr int64_t kBlock = 64;
  Scratch tmp(alloc, sizeof(float) * T * kBlock * B);
  pool.parallel_for((I + kBlock - 1) / kBlock, 1, [&](int64_t k0, int64_t k1, int tid) {
    for (int64_t k = k0; k < k1; ++k)
      reduce_partials(partials->as<float>(), P, I, B, k * kBlock, std::min(I, (k + 1) * kBlock),
                      tmp.as<float>() + tid * kBlock * B, dX);
  });
  return total;
}

void rowsparse_backward(ThreadPool& pool, const std::shared_ptr<Allocator>& alloc, const RowSparse& rows, int64_t L,
                        int64_t I, const float* xT, int64_t B, const float* dOut, float* dX, float* dW, float* dB) {
  partitioned_backward(pool, alloc, rows, L, I, xT, B, dX, dW, dB, [&](int64_t la, int64_t lb, float* g) {
    gather_gradient_tile(dOut, B, L, la, lb, g);
    return 0.0;
  });
}

double rowsparse_loss_backward(ThreadPool& pool, const std::shared_ptr<Allocator>& alloc, const RowSparse& rows,
                               const float* bias, int64_t L, int64_t I, const float* xT, int64_t B,
                               const LabelPositives& positives, LossKind kind, float scale, float* dX, float* dW,
                               float* dB) {
  return partitioned_backward(pool, alloc, rows, L, I, xT, B, dX, dW, dB, [&](int64_t la, int64_t lb, float* g) {
    accumulate_tile(rows, xT, B, la, lb, g);
    // The scores and their gradients, as ffiForward then lossForward would compute them
    // (same float operations: the gradient is bitwise the unfused one).
    double loss = 0.0;
    for (int64_t l = la; l < lb; ++l) {
      float* gl = g + (l - la) * B;
      const float bl = bias ? bias[l] : 0.0f;
      for (int64_t b = 0; b < B; ++b) gl[b] += bl;
      // Positives of label l: saved before the y = 0 pass overwrites the scores.
      const auto [p0, p1] = positives.of(l);
      for (int64_t p = p0; p < p1; ++p) positives.saved[p] = gl[positives.row[p]];
      loss += negative_pass(kind, gl, gl, B, scale);
      for (int64_t p = p0; p < p1; ++p) {
        double delta;
        float grad;
        positive_fix(kind, positives.saved[p], &delta, &grad);
        loss += delta;
        gl[positives.row[p]] = grad * scale;
      }
    }
    return loss;
  });
}

LabelPositives LabelPositives::build(const uint32_t* lp, const uint32_t* ids, int64_t B, int64_t offset, int64_t L) {
  std::vector<uint64_t> keys;  // local label * B + row
  std::vector<uint32_t> row_labels;
  for (int64_t b = 0; b < B; ++b) {
    row_positives(lp, ids, b, offset, L, row_labels);
    for (uint32_t l : row_labels) keys.push_back(static_cast<uint64_t>(l) * static_cast<uint64_t>(B) + b);
  }
  std::sort(keys.begin(), keys.end());
  LabelPositives p;
  p.label.reserve(keys.size());
  p.row.reserve(keys.size());
  for (uint64_t key : keys) {
    p.label.push_back(static_cast<uint32_t>(key / static_cast<uint64_t>(B)));
    p.row.push_back(static_cast<uint32_t>(key % static_cast<uint64_t>(B)));
  }
  p.saved.assign(keys.size(), 0.0f);
  return p;
}

int64_t first_out_of_range(ThreadPool& pool, const uint32_t* v, int64_t n, uint64_t limit) {
  std::atomic<int64_t> first{n};
  pool.parallel_for(n, 1 << 16, [&](int64_t b, int64_t e, int) {
    uint32_t hi = 0;  // a branch-free max first (vectorised): the common case is "all valid"
    for (int64_t i = b; i < e; ++i) hi = std::max(hi, v[i]);
    if (hi < limit) return;
    for (int64_t i = b; i < e; ++i)
      if (v[i] >= limit) {
        int64_t cur = first.load();
        while (i < cur && !first.compare_exchange_weak(cur, i)) {
        }
        return;
      }
  });
  return first.load() == n ? -1 : first.load();
}

TransposedInput::TransposedInput(ThreadPool& pool, const std::shared_ptr<Allocator>& alloc, const float* x, int64_t B,
                                 int64_t I) {
  if (B == 1) {
    data_ = x;
    return;
  }
  scratch_.emplace(alloc, sizeof(float) * B * I);
  transpose(pool, x, B, I, scratch_->as<float>());
  data_ = scratch_->as<float>();
}

}  // namespace xmc::cpu
