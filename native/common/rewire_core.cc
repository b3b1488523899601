// See rewire_core.h; the contract is documented in native/cpu/rewire.cc.
#include "rewire_core.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "splitmix.h"

namespace xmc::common {

std::vector<uint8_t> select_pruned(const RewireHost& host, const float* W, int64_t count, int64_t n) {
  std::vector<uint8_t> pruned(static_cast<size_t>(count), 0);
  if (n <= 0) return pruned;
  auto key = [](float w) { return std::isnan(w) ? -1.0f : std::fabs(w); };
  const std::shared_ptr<void> keys = host.scratch(sizeof(float) * count);
  float* k = static_cast<float*>(keys.get());
  host.parallel_for(count, 1 << 15, [&](int64_t i0, int64_t i1) {
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

void rewire_ffi(const RewireHost& host, int64_t L, int64_t k, int64_t input_dim, uint64_t seed, int64_t n, float* w,
                uint32_t* src, float* mm, float* vv) {
  const std::vector<uint8_t> pruned = select_pruned(host, w, L * k, n);
  const uint64_t I = static_cast<uint64_t>(input_dim);
  host.parallel_for(L, 64, [&](int64_t l0, int64_t l1) {
    std::vector<uint32_t> used, free_list;
    for (int64_t l = l0; l < l1; ++l) {
      const int64_t base = l * k;
      used.clear();
      for (int64_t j = 0; j < k; ++j)
        if (!pruned[base + j]) used.push_back(src[base + j]);
      if (used.size() == static_cast<size_t>(k)) continue;
      SplitMix rng(mix64(seed) ^ mix64(static_cast<uint64_t>(l) + 1));
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
}

void rewire_csr(const RewireHost& host, int64_t L, int64_t nnz, int64_t input_dim, uint64_t seed, int64_t n,
                uint32_t* rp, uint32_t* cc, float* w, float* mm, float* vv) {
  const std::vector<uint8_t> pruned = select_pruned(host, w, nnz, n);
  const uint64_t I = static_cast<uint64_t>(input_dim);

  // 1. Kept entries, row by row, sorted by column (scratch copies).
  std::vector<int64_t> kept_ptr(static_cast<size_t>(L) + 1, 0);
  for (int64_t l = 0; l < L; ++l) {
    int64_t c = 0;
    for (uint32_t e = rp[l]; e < rp[l + 1]; ++e) c += !pruned[e];
    kept_ptr[l + 1] = kept_ptr[l] + c;
  }
  const int64_t kept = kept_ptr[L];
  const std::shared_ptr<void> kc = host.scratch(sizeof(uint32_t) * kept), kwb = host.scratch(sizeof(float) * kept),
                              kmb = host.scratch(sizeof(float) * kept), kvb = host.scratch(sizeof(float) * kept);
  uint32_t* kcol = static_cast<uint32_t*>(kc.get());
  float* kw = static_cast<float*>(kwb.get());
  float* km = static_cast<float*>(kmb.get());
  float* kv = static_cast<float*>(kvb.get());
  host.parallel_for(L, 256, [&](int64_t l0, int64_t l1) {
    std::vector<uint32_t> order;
    for (int64_t l = l0; l < l1; ++l) {
      order.clear();
      for (uint32_t e = rp[l]; e < rp[l + 1]; ++e)
        if (!pruned[e]) order.push_back(e);
      std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return cc[a] < cc[b]; });
      int64_t out = kept_ptr[l];
      for (uint32_t e : order) {
        kcol[out] = cc[e];
        kw[out] = w[e];
        km[out] = mm[e];
        kv[out] = vv[e];
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
  SplitMix rng(mix64(seed));
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
  host.parallel_for(L, 256, [&](int64_t l0, int64_t l1) {
    for (int64_t l = l0; l < l1; ++l) {
      int64_t a = kept_ptr[l], a1 = kept_ptr[l + 1], g = grown_ptr[l], g1 = grown_ptr[l + 1];
      int64_t out = rp[l];
      while (a < a1 || g < g1) {
        const uint32_t gc = g < g1 ? static_cast<uint32_t>(grown[g] % I) : 0;
        if (g >= g1 || (a < a1 && kcol[a] < gc)) {
          cc[out] = kcol[a];
          w[out] = kw[a];
          mm[out] = km[a];
          vv[out] = kv[a];
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
}

}  // namespace xmc::common
