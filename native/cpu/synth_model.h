// The generative model of the synthetic XMC data sets (docs/SYNTHETIC_DATA.md
// explains it with its parameters; this file is its reference implementation).
//
// Label space (built once, O(labels) memory, no per-label vectors kept):
//   - popularity: the label of popularity rank r (0-based) has weight
//     w_r = (r + 1 + zipf_offset)^-zipf_exponent; label ids are a random
//     permutation of ranks (label_of_rank), so ids say nothing about frequency.
//   - general labels: the most popular ranks, while w_r > max_topic_share * (mass
//     of the remaining ranks) / topics, belong to no topic (like "Books" or
//     "Living people"): they are drawn from the global distribution only.
//   - every other label belongs to topic mix64-hash(seed, label) mod topics.
//   - alias tables (Vose) for: ranks by w (global), topics by their summed w,
//     and each topic's members by w.
//   - prototypes, unit vectors in R^latent_dim, made on demand from the
//     label's own random stream: p_l = normalize(sqrt(rho) c_t + sqrt(1-rho) u_l),
//     u_l a random unit vector, c_t its topic's unit center (cached, topics x
//     latent_dim floats); a general label's prototype is u_l alone.
//   - the projection W (feature_dim x latent_dim, N(0,1) entries), kept
//     transposed (latent_dim rows of feature_dim) for a vectorisable loop.
//
// A point (split s, index i), from its own stream key(seed, Point, s, i):
//   1. labels per point k = 1 + Poisson(lambda), lambda ~ Gamma(shape,
//      (mean-1)/shape) (over-dispersed around the mean), capped at max_labels.
//   2. a topic t ~ topic alias table.
//   3. k distinct labels: draw a rank from the global table; if its label has a
//      topic, with probability topic_mix replace it by a draw from topic t's
//      members. Each label's marginal probability stays w_l / sum(w); a
//      duplicate is drawn again (at most 32k + 64 draws in all). Sorted.
//   4. z = sum_j a_j p_{l_j} / sum_j a_j with a_j ~ Gamma(mix_concentration)
//      (1 = exponential: often one label dominates the point; larger = more
//      even mixes), plus latent_noise * N(0, I) / sqrt(latent_dim).
//   5. h = tanh(gain * W z); x = normalize(h / |h| + feature_noise * N(0, I) / sqrt(feature_dim)).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>
#include "synth_rng.h"

namespace xmc {
namespace synth {

struct SynthParams {
  uint64_t seed = 1;
  uint64_t train_points = 0;
  uint64_t test_points = 0;
  uint32_t labels = 0;
  double mean_labels_per_point = 1.0;
  uint32_t max_labels_per_point = 1;
  double label_count_shape = 2.0;
  double zipf_exponent = 0.65;
  double zipf_offset = 10.0;
  uint32_t topics = 1;
  double max_topic_share = 0.125;
  double topic_mix = 0.8;
  uint32_t latent_dim = 64;
  uint32_t feature_dim = 768;
  double prototype_topic_share = 0.5;
  double mix_concentration = 1.0;
  double latent_noise = 0.3;
  double feature_noise = 0.5;
  double gain = 2.0;

  void validate() const {
    auto need = [](bool ok, const char* what) {
      if (!ok) throw std::invalid_argument(std::string("synth parameters: ") + what);
    };
    need(labels >= 1, "labels must be >= 1");
    need(mean_labels_per_point >= 1.0, "meanLabelsPerPoint must be >= 1");
    need(max_labels_per_point >= 1, "maxLabelsPerPoint must be >= 1");
    need(label_count_shape > 0.0, "labelCountShape must be > 0");
    need(zipf_exponent >= 0.0, "zipfExponent must be >= 0");
    need(zipf_offset >= 0.0, "zipfOffset must be >= 0");
    need(topics >= 1, "topics must be >= 1");
    need(max_topic_share > 0.0, "maxTopicShare must be > 0");
    need(topic_mix >= 0.0 && topic_mix <= 1.0, "topicMix must be in [0, 1]");
    need(latent_dim >= 1 && latent_dim <= 4096, "latentDim must be in [1, 4096]");
    need(feature_dim >= 1 && feature_dim <= 65536, "featureDim must be in [1, 65536]");
    need(mix_concentration > 0.0, "mixConcentration must be > 0");
    need(prototype_topic_share >= 0.0 && prototype_topic_share < 1.0, "prototypeTopicShare must be in [0, 1)");
    need(latent_noise >= 0.0 && feature_noise >= 0.0 && gain > 0.0, "noise must be >= 0 and gain > 0");
  }
};

// Vose's alias method over n weights, written into caller-owned arrays.
// Deterministic: the same weights always give the same table.
inline void build_alias(const double* weights, uint32_t n, double* prob, uint32_t* alias,
                        std::vector<double>& scaled, std::vector<uint32_t>& small, std::vector<uint32_t>& large) {
  double total = 0.0;
  for (uint32_t i = 0; i < n; ++i) total += weights[i];
  scaled.resize(n);
  small.clear();
  large.clear();
  for (uint32_t i = 0; i < n; ++i) {
    scaled[i] = total > 0.0 ? weights[i] * n / total : 1.0;
    (scaled[i] < 1.0 ? small : large).push_back(i);
  }
  while (!small.empty() && !large.empty()) {
    const uint32_t s = small.back();
    small.pop_back();
    const uint32_t l = large.back();
    large.pop_back();
    prob[s] = scaled[s];
    alias[s] = l;
    scaled[l] = (scaled[l] + scaled[s]) - 1.0;
    (scaled[l] < 1.0 ? small : large).push_back(l);
  }
  for (uint32_t i : large) { prob[i] = 1.0; alias[i] = i; }
  for (uint32_t i : small) { prob[i] = 1.0; alias[i] = i; }  // only rounding leftovers
}

inline uint32_t sample_alias(const double* prob, const uint32_t* alias, uint32_t n, Rng& rng) {
  const double u = rng.uniform() * n;
  uint32_t i = static_cast<uint32_t>(u);
  if (i >= n) i = n - 1;
  return (u - i) < prob[i] ? i : alias[i];
}

// Per-thread work space of generate_point.
struct PointScratch {
  std::vector<double> z;
  std::vector<double> proto;
  std::vector<float> zf;
  std::vector<float> pre;
  std::vector<double> weights;
};

class Model {
 public:
  static constexpr uint32_t kNoTopic = std::numeric_limits<uint32_t>::max();

  explicit Model(const SynthParams& params) : p_(params) {
    p_.validate();
    build_label_space();
    build_topic_centers();
    build_projection();
  }

  const SynthParams& params() const { return p_; }
  uint32_t general_labels() const { return general_labels_; }
  uint32_t nonempty_topics() const { return nonempty_topics_; }

  PointScratch make_scratch() const {
    PointScratch s;
    s.z.resize(p_.latent_dim);
    s.proto.resize(p_.latent_dim);
    s.zf.resize(p_.latent_dim);
    s.pre.resize(p_.feature_dim);
    return s;
  }

  // Fills `labels` (sorted label ids) and `x` (feature_dim floats, unit norm) of one point.
  void generate_point(uint32_t split, uint64_t index, PointScratch& s, std::vector<uint32_t>& labels, float* x) const {
    Rng rng(stream_key(p_.seed, Domain::Point, split, index));
    const uint32_t d = p_.latent_dim;

    // 1. how many labels
    const double extra_mean = p_.mean_labels_per_point - 1.0;
    const double lambda = extra_mean > 0.0 ? rng.gamma(p_.label_count_shape) * extra_mean / p_.label_count_shape : 0.0;
    uint64_t k = 1 + rng.poisson(lambda);
    k = std::min<uint64_t>(k, std::min<uint32_t>(p_.max_labels_per_point, p_.labels));

    // 2. a topic (none when every label is general)
    const uint32_t topic = nonempty_topics_ > 0
        ? sample_alias(topic_prob_.data(), topic_alias_.data(), p_.topics, rng) : kNoTopic;

    // 3. k distinct labels
    labels.clear();
    const uint64_t max_draws = 32 * k + 64;
    for (uint64_t draw = 0; labels.size() < k && draw < max_draws; ++draw) {
      const uint32_t rank = sample_alias(rank_prob_.data(), rank_alias_.data(), p_.labels, rng);
      uint32_t label = label_of_rank_[rank];
      if (topic != kNoTopic && topic_of_label_[label] != kNoTopic && rng.uniform() < p_.topic_mix) {
        const uint32_t begin = topic_offsets_[topic];
        const uint32_t size = topic_offsets_[topic + 1] - begin;
        label = topic_members_[begin + sample_alias(member_prob_.data() + begin, member_alias_.data() + begin, size, rng)];
      }
      if (std::find(labels.begin(), labels.end(), label) == labels.end()) labels.push_back(label);
    }
    std::sort(labels.begin(), labels.end());

    // 4. latent code: a random convex mix of the prototypes, plus latent noise
    std::fill(s.z.begin(), s.z.end(), 0.0);
    s.weights.resize(labels.size());
    double weight_sum = 0.0;
    for (size_t j = 0; j < labels.size(); ++j) {
      s.weights[j] = rng.gamma(p_.mix_concentration);
      weight_sum += s.weights[j];
    }
    for (size_t j = 0; j < labels.size(); ++j) {
      prototype(labels[j], s.proto.data());
      const double a = s.weights[j] / weight_sum;
      for (uint32_t i = 0; i < d; ++i) s.z[i] += a * s.proto[i];
    }
    const double latent_sd = p_.latent_noise / std::sqrt(static_cast<double>(d));
    for (uint32_t i = 0; i < d; ++i) s.zf[i] = static_cast<float>(s.z[i] + latent_sd * rng.normal());

    // 5. features: tanh(gain * W z), unit norm, plus feature noise, unit norm
    const uint32_t D = p_.feature_dim;
    std::fill(s.pre.begin(), s.pre.end(), 0.0f);
    for (uint32_t kk = 0; kk < d; ++kk) {
      const float zk = s.zf[kk];
      const float* row = projection_t_.data() + static_cast<size_t>(kk) * D;
      float* pre = s.pre.data();
      for (uint32_t i = 0; i < D; ++i) pre[i] += row[i] * zk;  // fixed order: vectorises, stays deterministic
    }
    const float gain = static_cast<float>(p_.gain);
    double h_norm2 = 0.0;
    for (uint32_t i = 0; i < D; ++i) {
      const float h = static_cast<float>(det_tanh(static_cast<double>(gain * s.pre[i])));
      s.pre[i] = h;
      h_norm2 += static_cast<double>(h) * h;
    }
    const double h_scale = h_norm2 > 0.0 ? 1.0 / std::sqrt(h_norm2) : 0.0;
    const double noise_sd = p_.feature_noise / std::sqrt(static_cast<double>(D));
    double x_norm2 = 0.0;
    for (uint32_t i = 0; i < D; ++i) {
      const double v = s.pre[i] * h_scale + noise_sd * rng.normal();
      x[i] = static_cast<float>(v);
      x_norm2 += v * v;
    }
    const float x_scale = x_norm2 > 0.0 ? static_cast<float>(1.0 / std::sqrt(x_norm2)) : 0.0f;
    for (uint32_t i = 0; i < D; ++i) x[i] *= x_scale;
  }

  // Label `label`'s unit prototype in R^latent_dim, from its own stream.
  void prototype(uint32_t label, double* out) const {
    const uint32_t d = p_.latent_dim;
    Rng rng(stream_key(p_.seed, Domain::Prototype, label));
    double norm2 = 0.0;
    for (uint32_t i = 0; i < d; ++i) {
      out[i] = rng.normal();
      norm2 += out[i] * out[i];
    }
    const double inv = 1.0 / std::sqrt(norm2);
    const uint32_t topic = topic_of_label_[label];
    if (topic == kNoTopic) {
      for (uint32_t i = 0; i < d; ++i) out[i] *= inv;
      return;
    }
    const double own = std::sqrt(1.0 - p_.prototype_topic_share) * inv;
    const double shared = std::sqrt(p_.prototype_topic_share);
    const float* center = topic_centers_.data() + static_cast<size_t>(topic) * d;
    norm2 = 0.0;
    for (uint32_t i = 0; i < d; ++i) {
      out[i] = own * out[i] + shared * center[i];
      norm2 += out[i] * out[i];
    }
    const double inv2 = 1.0 / std::sqrt(norm2);
    for (uint32_t i = 0; i < d; ++i) out[i] *= inv2;
  }

 private:
  void build_label_space() {
    const uint32_t L = p_.labels;
    const uint32_t T = p_.topics;
    std::vector<double> weight(L);
    for (uint32_t r = 0; r < L; ++r) weight[r] = det_pow(r + 1.0 + p_.zipf_offset, -p_.zipf_exponent);

    // ids: a random permutation of ranks (Fisher-Yates on the Permutation stream)
    label_of_rank_.resize(L);
    for (uint32_t r = 0; r < L; ++r) label_of_rank_[r] = r;
    Rng perm(stream_key(p_.seed, Domain::Permutation));
    for (uint32_t i = L - 1; i > 0; --i) std::swap(label_of_rank_[i], label_of_rank_[perm.below(uint64_t(i) + 1)]);

    // general labels: the head ranks too heavy for any one topic
    std::vector<double> suffix(L + 1, 0.0);
    for (uint32_t r = L; r-- > 0;) suffix[r] = suffix[r + 1] + weight[r];
    general_labels_ = 0;
    while (general_labels_ < L && weight[general_labels_] > p_.max_topic_share * suffix[general_labels_] / T) ++general_labels_;

    topic_of_label_.assign(L, kNoTopic);
    std::vector<double> label_weight(L);
    std::vector<uint32_t> topic_size(T, 0);
    for (uint32_t r = 0; r < L; ++r) {
      const uint32_t label = label_of_rank_[r];
      label_weight[label] = weight[r];
      if (r < general_labels_) continue;
      const uint32_t topic = static_cast<uint32_t>(mix64(stream_key(p_.seed, Domain::TopicOf, label)) % T);
      topic_of_label_[label] = topic;
      ++topic_size[topic];
    }

    std::vector<double> scaled;
    std::vector<uint32_t> small, large;
    rank_prob_.resize(L);
    rank_alias_.resize(L);
    build_alias(weight.data(), L, rank_prob_.data(), rank_alias_.data(), scaled, small, large);

    // topic members, by label id within a topic
    topic_offsets_.assign(T + 1, 0);
    for (uint32_t t = 0; t < T; ++t) topic_offsets_[t + 1] = topic_offsets_[t] + topic_size[t];
    topic_members_.resize(topic_offsets_[T]);
    std::vector<uint32_t> fill(topic_offsets_.begin(), topic_offsets_.end() - 1);
    for (uint32_t label = 0; label < L; ++label) {
      const uint32_t t = topic_of_label_[label];
      if (t != kNoTopic) topic_members_[fill[t]++] = label;
    }
    member_prob_.resize(topic_members_.size());
    member_alias_.resize(topic_members_.size());
    std::vector<double> topic_mass(T, 0.0), member_weight;
    nonempty_topics_ = 0;
    for (uint32_t t = 0; t < T; ++t) {
      const uint32_t begin = topic_offsets_[t], size = topic_size[t];
      if (size == 0) continue;
      ++nonempty_topics_;
      member_weight.resize(size);
      for (uint32_t j = 0; j < size; ++j) {
        member_weight[j] = label_weight[topic_members_[begin + j]];
        topic_mass[t] += member_weight[j];
      }
      build_alias(member_weight.data(), size, member_prob_.data() + begin, member_alias_.data() + begin, scaled, small, large);
    }
    topic_prob_.resize(T);
    topic_alias_.resize(T);
    build_alias(topic_mass.data(), T, topic_prob_.data(), topic_alias_.data(), scaled, small, large);
  }

  void build_topic_centers() {
    const uint32_t d = p_.latent_dim;
    topic_centers_.assign(static_cast<size_t>(p_.topics) * d, 0.0f);
    std::vector<double> v(d);
    for (uint32_t t = 0; t < p_.topics; ++t) {
      Rng rng(stream_key(p_.seed, Domain::TopicCenter, t));
      double norm2 = 0.0;
      for (uint32_t i = 0; i < d; ++i) { v[i] = rng.normal(); norm2 += v[i] * v[i]; }
      const double inv = 1.0 / std::sqrt(norm2);
      for (uint32_t i = 0; i < d; ++i) topic_centers_[static_cast<size_t>(t) * d + i] = static_cast<float>(v[i] * inv);
    }
  }

  void build_projection() {
    const uint32_t d = p_.latent_dim, D = p_.feature_dim;
    projection_t_.resize(static_cast<size_t>(d) * D);
    Rng rng(stream_key(p_.seed, Domain::Projection));
    for (uint32_t i = 0; i < D; ++i)  // W[i][k] drawn row by row, stored transposed
      for (uint32_t k = 0; k < d; ++k) projection_t_[static_cast<size_t>(k) * D + i] = static_cast<float>(rng.normal());
  }

  SynthParams p_;
  uint32_t general_labels_ = 0;
  uint32_t nonempty_topics_ = 0;
  std::vector<uint32_t> label_of_rank_;
  std::vector<uint32_t> topic_of_label_;
  std::vector<double> rank_prob_;
  std::vector<uint32_t> rank_alias_;
  std::vector<double> topic_prob_;
  std::vector<uint32_t> topic_alias_;
  std::vector<uint32_t> topic_offsets_;
  std::vector<uint32_t> topic_members_;
  std::vector<double> member_prob_;
  std::vector<uint32_t> member_alias_;
  std::vector<float> topic_centers_;
  std::vector<float> projection_t_;
};

}  // namespace synth
}  // namespace xmc
