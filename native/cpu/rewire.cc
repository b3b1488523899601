// Rewiring (prune and regrow) of the sparse output layers, as in the paper's
// dynamic sparse training: drop the weakest connections, grow new random ones.
//
//   rewireFfi(W[L,k], idx[L,k], m[L,k], v[L,k], {fraction, inputDim, seed}) -> n
//   rewireSparse(rowPtr[L+1], col[nnz], W[nnz], m[nnz], v[nnz], {fraction, inputDim, seed}) -> n
//
// Pruning (both): n = floor(fraction * count) connections with the smallest
// |W| over the whole layer (one threshold: nth_element; ties at the threshold
// go to the lower flat index; NaN weights count as smallest). n is known when
// the op is enqueued, so it is returned synchronously.
//
// Regrowth, FFI: each pruned slot (l, j) gets a source drawn uniformly from
// the inputs [0, inputDim) not used by row l's other connections at that
// moment (its kept ones and the slots regrown before it, in slot order); the
// pruned sources are eligible again. Fan-in stays exactly k and sources stay
// distinct. Slot positions do not move.
// Regrowth, CSR: n positions drawn uniformly among the empty cells of the
// whole L x inputDim matrix (cells not held by a kept connection, pruned
// cells included), all distinct. nnz stays fixed, so the arrays keep their
// length: rowPtr changes, and each row's entries are rewritten sorted by col,
// with W, m and v permuted consistently. Row sizes change.
//
// New connections start with W = 0 (as in RigL: they do not change the
// layer's output until trained) and Adam moments m = v = 0 (fresh state).
// Kept connections keep their weights and moments.
//
// Randomness: FFI row l draws from a splitmix64 stream seeded with
// mix64(seed) ^ mix64(l + 1), so the result does not depend on the thread
// count; CSR draws from one stream seeded with mix64(seed) (sequential).
#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "rowsparse.h"

namespace xmc::cpu {
namespace {

// 1 for the n connections with the smallest |W| (see the header comment).
std::vector<uint8_t> select_pruned(ThreadPool& pool, const std::shared_ptr<Allocator>& alloc, const float* W,
                                   int64_t count, int64_t n) {
  std::vector<uint8_t> pruned(static_cast<size_t>(count), 0);
  if (n <= 0) return pruned;
  auto key = [](float w) { return std::isnan(w) ? -1.0f : std::fabs(w); };
  Scratch keys(alloc, sizeof(float) * count);
  float* k = keys.as<float>();
  pool.parallel_for(count, 1 << 15, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) k[i] = key(W[i]);
  });
  std::nth_element(k, k + (n - 1), k + count);
  const float threshold = k[n - 1];
  int64_t below = 0;
  for (int64_t i = 0; i < count; ++i) below += key(W[i]) < threshold;
  int64_t ties = n - below;  // >= 1 by definition of the threshold
  for (int64_t i = 0; i < count; ++i) {
    const float ki = key(W[i]);
    if (ki < threshold || (ki == threshold && ties > 0 && (--ties, true))) pruned[i] = 1;
  }
  return pruned;
}

struct RewireOptions {
  double fraction;
  int64_t input_dim;
  uint64_t seed;
};

// inputDim must fit the index dtype: int32 index tensors hold sources < 2^31.
RewireOptions parse_rewire_options(const OpCall& call, const Napi::Object& opts, const Tensor& indices) {
  RewireOptions o;
  o.fraction = call.option(opts, "fraction", std::nullopt, 0.0, 1.0, false);
  const double max_dim = indices.dtype == DType::Int32 ? 2147483648.0 : 4294967296.0;
  o.input_dim = static_cast<int64_t>(call.option(opts, "inputDim", std::nullopt, 1.0, max_dim, true));
  o.seed = static_cast<uint64_t>(call.option(opts, "seed", std::nullopt, 0.0, 9007199254740991.0, true));
  return o;
}

Napi::Value RewireFfi(const Napi::CallbackInfo& info) {
  OpCall call(info, "rewireFfi");
  Tensor W = call.tensor(1, "W"), idx = call.tensor(2, "idx"), m = call.tensor(3, "m"), v = call.tensor(4, "v");
  auto [L, k] = check_ffi_layer(call, W, idx, nullptr);
  call.expect_dtype(m, "m", DType::Float32);
  call.expect_dtype(v, "v", DType::Float32);
  call.expect_same_shape(m, "m", W, "W");
  call.expect_same_shape(v, "v", W, "W");
  call.expect_distinct(W, "W", m, "m");
  call.expect_distinct(W, "W", v, "v");
  call.expect_distinct(m, "m", v, "v");
  RewireOptions o = parse_rewire_options(call, call.options(5), idx);
  if (k > o.input_dim)
    call.range_error("fan-in k = " + std::to_string(k) + " exceeds option inputDim = " + std::to_string(o.input_dim) +
                     ": a row cannot have k distinct sources");
  const int64_t total = L * k;
  const int64_t n = static_cast<int64_t>(std::floor(o.fraction * static_cast<double>(total)));
  if (n == 0) return Napi::Number::New(info.Env(), 0);
  call.enqueue([pool = call.pool(), alloc = call.allocator(), W, idx, m, v, L = L, k = k, o, n, total] {
    validate_ffi_idx(*pool, idx, k, o.input_dim);
    float* w = W.data<float>();
    uint32_t* src = idx.data<uint32_t>();
    float* mm = m.data<float>();
    float* vv = v.data<float>();
    const std::vector<uint8_t> pruned = select_pruned(*pool, alloc, w, total, n);
    const uint64_t I = static_cast<uint64_t>(o.input_dim);
    pool->parallel_for(L, 64, [&](int64_t l0, int64_t l1, int) {
      std::vector<uint32_t> used, free_list;
      for (int64_t l = l0; l < l1; ++l) {
        const int64_t base = l * k;
        used.clear();
        for (int64_t j = 0; j < k; ++j)
          if (!pruned[base + j]) used.push_back(src[base + j]);
        if (used.size() == static_cast<size_t>(k)) continue;
        SplitMix rng(mix64(o.seed) ^ mix64(static_cast<uint64_t>(l) + 1));
        // Dense rows (few free sources): draw from an explicit list of the free ones.
        const bool enumerate = (I - used.size()) * 4 < I;
        if (enumerate) {
          std::vector<uint32_t> sorted_used(used);
          std::sort(sorted_used.begin(), sorted_used.end());
          free_list.clear();
          for (uint64_t s = 0; s < I; ++s)
            if (!std::binary_search(sorted_used.begin(), sorted_used.end(), static_cast<uint32_t>(s)))
              free_list.push_back(static_cast<uint32_t>(s));
        }
        for (int64_t j = 0; j < k; ++j) {
          const int64_t e = base + j;
          if (!pruned[e]) continue;
          uint32_t s;
          if (enumerate) {
            const size_t pick = static_cast<size_t>(rng.below(free_list.size()));
            s = free_list[pick];
            free_list[pick] = free_list.back();
            free_list.pop_back();
          } else {
            do {
              s = static_cast<uint32_t>(rng.below(I));
            } while (std::find(used.begin(), used.end(), s) != used.end());
          }
          used.push_back(s);
          src[e] = s;
          w[e] = 0.0f;
          mm[e] = 0.0f;
          vv[e] = 0.0f;
        }
      }
    });
  });
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

Napi::Value RewireSparse(const Napi::CallbackInfo& info) {
  OpCall call(info, "rewireSparse");
  Tensor rowPtr = call.tensor(1, "rowPtr"), col = call.tensor(2, "col"), W = call.tensor(3, "W"), m = call.tensor(4, "m"),
         v = call.tensor(5, "v");
  auto [L, nnz] = check_csr_layer(call, rowPtr, col, W, nullptr);
  call.expect_dtype(m, "m", DType::Float32);
  call.expect_dtype(v, "v", DType::Float32);
  call.expect_same_shape(m, "m", W, "W");
  call.expect_same_shape(v, "v", W, "W");
  call.expect_distinct(W, "W", m, "m");
  call.expect_distinct(W, "W", v, "v");
  call.expect_distinct(m, "m", v, "v");
  RewireOptions o = parse_rewire_options(call, call.options(6), col);
  if (static_cast<double>(nnz) > static_cast<double>(L) * static_cast<double>(o.input_dim))
    call.range_error("nnz = " + std::to_string(nnz) + " exceeds L * inputDim = " + std::to_string(L) + " * " +
                     std::to_string(o.input_dim) + " cells");
  const int64_t n = static_cast<int64_t>(std::floor(o.fraction * static_cast<double>(nnz)));
  if (n == 0) return Napi::Number::New(info.Env(), 0);
  call.enqueue([pool = call.pool(), alloc = call.allocator(), rowPtr, col, W, m, v, L = L, nnz = nnz, o, n] {
    validate_csr(*pool, rowPtr, L, col, nnz, o.input_dim);
    uint32_t* rp = rowPtr.data<uint32_t>();
    uint32_t* cc = col.data<uint32_t>();
    float* w = W.data<float>();
    float* mm = m.data<float>();
    float* vv = v.data<float>();
    const std::vector<uint8_t> pruned = select_pruned(*pool, alloc, w, nnz, n);
    const uint64_t I = static_cast<uint64_t>(o.input_dim);

    // 1. Kept entries, row by row, sorted by column (scratch copies).
    std::vector<int64_t> kept_ptr(static_cast<size_t>(L) + 1, 0);
    for (int64_t l = 0; l < L; ++l) {
      int64_t c = 0;
      for (uint32_t e = rp[l]; e < rp[l + 1]; ++e) c += !pruned[e];
      kept_ptr[l + 1] = kept_ptr[l] + c;
    }
    const int64_t kept = kept_ptr[L];
    Scratch kc(alloc, sizeof(uint32_t) * kept), kw(alloc, sizeof(float) * kept), km(alloc, sizeof(float) * kept),
        kv(alloc, sizeof(float) * kept);
    uint32_t* kcol = kc.as<uint32_t>();
    pool->parallel_for(L, 256, [&](int64_t l0, int64_t l1, int) {
      std::vector<uint32_t> order;
      for (int64_t l = l0; l < l1; ++l) {
        order.clear();
        for (uint32_t e = rp[l]; e < rp[l + 1]; ++e)
          if (!pruned[e]) order.push_back(e);
        std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return cc[a] < cc[b]; });
        int64_t out = kept_ptr[l];
        for (uint32_t e : order) {
          kcol[out] = cc[e];
          kw.as<float>()[out] = w[e];
          km.as<float>()[out] = mm[e];
          kv.as<float>()[out] = vv[e];
          ++out;
        }
      }
    });
    auto is_kept = [&](uint64_t r, uint32_t c) {
      return std::binary_search(kcol + kept_ptr[r], kcol + kept_ptr[r + 1], c);
    };

    // 2. n distinct new cells among the empty ones.
    const uint64_t cells = static_cast<uint64_t>(L) * I;
    const uint64_t empty = cells - static_cast<uint64_t>(kept);
    std::vector<uint64_t> grown;  // cell = row * I + col
    grown.reserve(static_cast<size_t>(n));
    SplitMix rng(mix64(o.seed));
    if (empty < 2 * static_cast<uint64_t>(n) || empty * 4 < cells) {
      // Crowded matrix: list the empty cells and draw without replacement.
      std::vector<uint64_t> cand;
      cand.reserve(static_cast<size_t>(empty));
      for (uint64_t r = 0; r < static_cast<uint64_t>(L); ++r)
        for (uint64_t c = 0; c < I; ++c)
          if (!is_kept(r, static_cast<uint32_t>(c))) cand.push_back(r * I + c);
      for (int64_t t = 0; t < n; ++t) {
        const size_t pick = t + static_cast<size_t>(rng.below(cand.size() - t));
        std::swap(cand[t], cand[pick]);
        grown.push_back(cand[t]);
      }
    } else {
      std::unordered_set<uint64_t> taken;
      taken.reserve(static_cast<size_t>(n) * 2);
      while (static_cast<int64_t>(grown.size()) < n) {
        const uint64_t cell = rng.below(cells);
        if (is_kept(cell / I, static_cast<uint32_t>(cell % I)) || !taken.insert(cell).second) continue;
        grown.push_back(cell);
      }
    }
    std::sort(grown.begin(), grown.end());  // by row, then column

    // 3. New CSR: per row, kept and grown entries merged in column order.
    std::vector<int64_t> grown_ptr(static_cast<size_t>(L) + 1, 0);
    for (uint64_t cell : grown) grown_ptr[cell / I + 1]++;
    for (int64_t l = 0; l < L; ++l) grown_ptr[l + 1] += grown_ptr[l];
    for (int64_t l = 0; l <= L; ++l) rp[l] = static_cast<uint32_t>(kept_ptr[l] + grown_ptr[l]);
    pool->parallel_for(L, 256, [&](int64_t l0, int64_t l1, int) {
      for (int64_t l = l0; l < l1; ++l) {
        int64_t a = kept_ptr[l], a1 = kept_ptr[l + 1], g = grown_ptr[l], g1 = grown_ptr[l + 1];
        int64_t out = rp[l];
        while (a < a1 || g < g1) {
          const uint32_t gc = g < g1 ? static_cast<uint32_t>(grown[g] % I) : 0;
          if (g >= g1 || (a < a1 && kcol[a] < gc)) {
            cc[out] = kcol[a];
            w[out] = kw.as<float>()[a];
            mm[out] = km.as<float>()[a];
            vv[out] = kv.as<float>()[a];
            ++a;
          } else {
            cc[out] = gc;
            w[out] = 0.0f;
            mm[out] = 0.0f;
            vv[out] = 0.0f;
            ++g;
          }
          ++out;
        }
      }
    });
  });
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

}  // namespace
}  // namespace xmc::cpu

namespace xmc {
void register_rewire(Napi::Env env, Napi::Object exports) {
  exports.Set("rewireFfi", Napi::Function::New(env, cpu::RewireFfi, "rewireFfi"));
  exports.Set("rewireSparse", Napi::Function::New(env, cpu::RewireSparse, "rewireSparse"));
}
}  // namespace xmc
