// Synthetic XMC data generator: writes a train and a test split, each as a
// dense feature matrix (.npy, C order, '<f2' or '<f4', points x feature_dim)
// and a sparse label file (pyxclib text: header "rows labels", then per point
// "l:1 l:1 ..." with increasing ids, an empty line for a point without labels).
// The model is in synth_model.h and docs/SYNTHETIC_DATA.md.
//
// Pipeline, per split: worker threads claim chunks of kChunkPoints consecutive
// points in order and fill a ring of 2*threads+2 chunk slots; the calling
// thread writes the slots to the files strictly in chunk order. Memory is
// bounded by the ring (a few MB), whatever the split size; the bytes depend
// only on the parameters, since a point is a pure function of (seed, split,
// index). Runs on a libuv worker thread (AsyncProgressWorker) and resolves a
// Promise; progress is reported at most every 250 ms.
//
// JS surface (src/synth/index.ts wraps it):
//   synthGenerate(params, paths, options, onProgress?) -> Promise<result>
//   synthFloatToHalf(Float32Array) -> Uint16Array   (the exact conversion, for tests)
//   synthMathCheck(name, Float64Array) -> Float64Array (libm-free exp/log/tanh, for tests)
//   synthVersion: number                            (generator version, in meta.json)
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "register.h"
#include "synth_io.h"
#include "synth_model.h"

namespace xmc {
namespace {

using synth::Model;
using synth::OutputFile;
using synth::SynthParams;

// Bump when any byte of the output for given parameters would change.
constexpr int kSynthVersion = 1;
constexpr uint64_t kChunkPoints = 256;

struct SplitPaths {
  std::string features;
  std::string labels;
};

struct SplitStats {
  uint64_t points = 0;
  uint64_t occurrences = 0;
  uint32_t max_labels = 0;
  uint32_t min_labels = 0;
  uint64_t feature_bytes = 0;
  uint64_t label_bytes = 0;
  std::vector<uint32_t> label_counts;  // points per label
};

struct Progress {
  uint64_t points_done;
  uint64_t points_total;
  uint32_t split;
  double elapsed_s;
};

struct Chunk {
  uint64_t index = 0;
  bool ready = false;
  std::vector<char> features;
  std::string labels_text;
  std::vector<uint32_t> label_ids;
  uint32_t max_labels = 0;
  uint32_t min_labels = 0;
};

void append_label_line(std::string& out, const std::vector<uint32_t>& labels) {
  char buf[16];
  for (size_t j = 0; j < labels.size(); ++j) {
    if (j) out.push_back(' ');
    auto res = std::to_chars(buf, buf + sizeof buf, labels[j]);
    out.append(buf, res.ptr);
    out.append(":1", 2);
  }
  out.push_back('\n');
}

void fill_chunk(const Model& model, uint32_t split, uint64_t chunk, uint64_t points, bool half,
                synth::PointScratch& scratch, std::vector<float>& x, std::vector<uint32_t>& labels, Chunk& out) {
  const uint32_t D = model.params().feature_dim;
  const uint64_t begin = chunk * kChunkPoints;
  const uint64_t end = std::min(points, begin + kChunkPoints);
  const size_t value_bytes = half ? 2 : 4;
  out.features.resize((end - begin) * D * value_bytes);
  out.labels_text.clear();
  out.label_ids.clear();
  out.max_labels = 0;
  out.min_labels = std::numeric_limits<uint32_t>::max();
  char* dst = out.features.data();
  for (uint64_t i = begin; i < end; ++i) {
    model.generate_point(split, i, scratch, labels, x.data());
    if (half) {
      for (uint32_t c = 0; c < D; ++c) {
        const uint16_t h = synth::float_to_half(x[c]);
        std::memcpy(dst + 2 * c, &h, 2);  // little-endian hosts only (x86-64, aarch64)
      }
    } else {
      std::memcpy(dst, x.data(), D * 4);
    }
    dst += D * value_bytes;
    append_label_line(out.labels_text, labels);
    out.label_ids.insert(out.label_ids.end(), labels.begin(), labels.end());
    out.max_labels = std::max<uint32_t>(out.max_labels, static_cast<uint32_t>(labels.size()));
    out.min_labels = std::min<uint32_t>(out.min_labels, static_cast<uint32_t>(labels.size()));
  }
}

// Generates one split into its two files. `report(done)` is called from this thread.
void generate_split(const Model& model, uint32_t split, uint64_t points, const SplitPaths& paths, bool half,
                    unsigned threads, const std::function<void(uint64_t)>& report, SplitStats& stats) {
  const SynthParams& p = model.params();
  stats = SplitStats();
  stats.points = points;
  stats.label_counts.assign(p.labels, 0);
  stats.min_labels = points ? std::numeric_limits<uint32_t>::max() : 0;

  OutputFile features, labels;
  features.open(paths.features);
  labels.open(paths.labels);
  features.write(synth::npy_header(half ? "<f2" : "<f4", points, p.feature_dim));
  labels.write(std::to_string(points) + " " + std::to_string(p.labels) + "\n");

  const uint64_t chunks = (points + kChunkPoints - 1) / kChunkPoints;
  const uint64_t window = 2 * static_cast<uint64_t>(threads) + 2;
  std::vector<Chunk> slots(window);
  std::mutex mu;
  std::condition_variable cv;
  uint64_t next = 0, written = 0;
  bool abort = false;
  std::exception_ptr worker_error;

  auto worker = [&]() {
    synth::PointScratch scratch = model.make_scratch();
    std::vector<float> x(p.feature_dim);
    std::vector<uint32_t> point_labels;
    for (;;) {
      uint64_t c;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return abort || next >= chunks || next < written + window; });
        if (abort || next >= chunks) return;
        c = next++;
      }
      Chunk& slot = slots[c % window];  // free: chunk c - window has been written
      try {
        fill_chunk(model, split, c, points, half, scratch, x, point_labels, slot);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!worker_error) worker_error = std::current_exception();
        abort = true;
        cv.notify_all();
        return;
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        slot.index = c;
        slot.ready = true;
      }
      cv.notify_all();
    }
  };

  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back(worker);

  std::exception_ptr writer_error;
  try {
    for (uint64_t c = 0; c < chunks; ++c) {
      Chunk& slot = slots[c % window];
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return abort || (slot.ready && slot.index == c); });
        if (abort) break;
      }
      features.write(slot.features.data(), slot.features.size());
      labels.write(slot.labels_text);
      for (uint32_t id : slot.label_ids) ++stats.label_counts[id];
      stats.occurrences += slot.label_ids.size();
      stats.max_labels = std::max(stats.max_labels, slot.max_labels);
      stats.min_labels = std::min(stats.min_labels, slot.min_labels);
      {
        std::lock_guard<std::mutex> lock(mu);
        slot.ready = false;
        written = c + 1;
      }
      cv.notify_all();
      report(std::min(points, (c + 1) * kChunkPoints));
    }
  } catch (...) {
    writer_error = std::current_exception();
    std::lock_guard<std::mutex> lock(mu);
    abort = true;
  }
  cv.notify_all();
  for (auto& t : pool) t.join();
  if (writer_error) std::rethrow_exception(writer_error);
  if (worker_error) std::rethrow_exception(worker_error);
  stats.feature_bytes = features.bytes_written();
  stats.label_bytes = labels.bytes_written();
  features.close();
  labels.close();
}

// --- N-API -----------------------------------------------------------------

double get_number(const Napi::Object& obj, const char* key) {
  Napi::Value v = obj.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(obj.Env(), std::string("synthGenerate: params.") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

uint64_t get_count(const Napi::Object& obj, const char* key, double max) {
  const double v = get_number(obj, key);
  if (!(v >= 0 && v <= max) || v != std::floor(v))
    throw Napi::RangeError::New(obj.Env(), std::string("synthGenerate: params.") + key + " must be an integer in [0, " + std::to_string(max) + "]");
  return static_cast<uint64_t>(v);
}

std::string get_string(const Napi::Object& obj, const char* key) {
  Napi::Value v = obj.Get(key);
  if (!v.IsString()) throw Napi::TypeError::New(obj.Env(), std::string("synthGenerate: ") + key + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

SynthParams read_params(const Napi::Object& o) {
  SynthParams p;
  p.seed = get_count(o, "seed", 9007199254740991.0);
  p.train_points = get_count(o, "trainPoints", 4294967295.0);
  p.test_points = get_count(o, "testPoints", 4294967295.0);
  p.labels = static_cast<uint32_t>(get_count(o, "labels", 4294967294.0));
  p.mean_labels_per_point = get_number(o, "meanLabelsPerPoint");
  p.max_labels_per_point = static_cast<uint32_t>(get_count(o, "maxLabelsPerPoint", 1e6));
  p.label_count_shape = get_number(o, "labelCountShape");
  p.zipf_exponent = get_number(o, "zipfExponent");
  p.zipf_offset = get_number(o, "zipfOffset");
  p.topics = static_cast<uint32_t>(get_count(o, "topics", 1e8));
  p.max_topic_share = get_number(o, "maxTopicShare");
  p.topic_mix = get_number(o, "topicMix");
  p.latent_dim = static_cast<uint32_t>(get_count(o, "latentDim", 4096));
  p.feature_dim = static_cast<uint32_t>(get_count(o, "featureDim", 65536));
  p.prototype_topic_share = get_number(o, "prototypeTopicShare");
  p.mix_concentration = get_number(o, "mixConcentration");
  p.latent_noise = get_number(o, "latentNoise");
  p.feature_noise = get_number(o, "featureNoise");
  p.gain = get_number(o, "gain");
  try {
    p.validate();
  } catch (const std::exception& e) {
    throw Napi::RangeError::New(o.Env(), e.what());
  }
  return p;
}

Napi::Object split_result(Napi::Env env, const SplitStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("points", static_cast<double>(s.points));
  o.Set("labelOccurrences", static_cast<double>(s.occurrences));
  o.Set("minLabelsPerPoint", static_cast<double>(s.min_labels));
  o.Set("maxLabelsPerPoint", static_cast<double>(s.max_labels));
  o.Set("featureBytes", static_cast<double>(s.feature_bytes));
  o.Set("labelBytes", static_cast<double>(s.label_bytes));
  Napi::Uint32Array counts = Napi::Uint32Array::New(env, s.label_counts.size());
  if (!s.label_counts.empty()) std::memcpy(counts.Data(), s.label_counts.data(), s.label_counts.size() * 4);
  o.Set("labelCounts", counts);
  return o;
}

class SynthWorker : public Napi::AsyncProgressWorker<Progress> {
 public:
  SynthWorker(Napi::Env env, SynthParams params, SplitPaths train, SplitPaths test, bool half, unsigned threads,
              Napi::Value on_progress)
      : Napi::AsyncProgressWorker<Progress>(env, "xmc.synthGenerate"),
        deferred_(Napi::Promise::Deferred::New(env)),
        params_(params), train_(std::move(train)), test_(std::move(test)), half_(half), threads_(threads) {
    if (on_progress.IsFunction()) on_progress_ = Napi::Persistent(on_progress.As<Napi::Function>());
  }

  Napi::Promise promise() const { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    try {
      const auto start = std::chrono::steady_clock::now();
      Model model(params_);
      general_labels_ = model.general_labels();
      nonempty_topics_ = model.nonempty_topics();
      const uint64_t total = params_.train_points + params_.test_points;
      auto last = start;
      auto reporter = [&](uint32_t split, uint64_t offset) {
        return [&, split, offset](uint64_t done) {
          const auto now = std::chrono::steady_clock::now();
          const bool finished = offset + done == total;
          if (!finished && now - last < std::chrono::milliseconds(250)) return;
          last = now;
          Progress pr{offset + done, total, split, std::chrono::duration<double>(now - start).count()};
          progress.Send(&pr, 1);
        };
      };
      generate_split(model, 0, params_.train_points, train_, half_, threads_, reporter(0, 0), train_stats_);
      generate_split(model, 1, params_.test_points, test_, half_, threads_, reporter(1, params_.train_points), test_stats_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnProgress(const Progress* data, size_t count) override {
    if (on_progress_.IsEmpty() || count == 0) return;
    Napi::Env env = Env();
    const Progress& pr = data[count - 1];
    try {
      on_progress_.Call({Napi::Number::New(env, static_cast<double>(pr.points_done)),
                         Napi::Number::New(env, static_cast<double>(pr.points_total)),
                         Napi::String::New(env, pr.split == 0 ? "train" : "test"),
                         Napi::Number::New(env, pr.elapsed_s)});
    } catch (const Napi::Error&) {
      // A failing progress callback must not take the generator down; the TS wrapper guards it too.
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("generatorVersion", kSynthVersion);
    out.Set("generalLabels", static_cast<double>(general_labels_));
    out.Set("nonemptyTopics", static_cast<double>(nonempty_topics_));
    out.Set("train", split_result(env, train_stats_));
    out.Set("test", split_result(env, test_stats_));
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference on_progress_;
  SynthParams params_;
  SplitPaths train_, test_;
  bool half_;
  unsigned threads_;
  uint32_t general_labels_ = 0, nonempty_topics_ = 0;
  SplitStats train_stats_, test_stats_;
};

// synthGenerate(params, paths{trainFeatures, trainLabels, testFeatures, testLabels},
//               options{dtype: 'float16'|'float32', threads}, onProgress?) -> Promise
Napi::Value SynthGenerate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsObject() || !info[1].IsObject() || !info[2].IsObject())
    throw Napi::TypeError::New(env, "synthGenerate(params, paths, options, onProgress?) expects three objects");
  SynthParams params = read_params(info[0].As<Napi::Object>());
  Napi::Object paths = info[1].As<Napi::Object>();
  Napi::Object options = info[2].As<Napi::Object>();
  SplitPaths train{get_string(paths, "trainFeatures"), get_string(paths, "trainLabels")};
  SplitPaths test{get_string(paths, "testFeatures"), get_string(paths, "testLabels")};
  const std::string dtype = get_string(options, "dtype");
  if (dtype != "float16" && dtype != "float32")
    throw Napi::RangeError::New(env, "synthGenerate: options.dtype must be 'float16' or 'float32', got '" + dtype + "'");
  unsigned threads = static_cast<unsigned>(get_count(options, "threads", 1024));
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  auto* worker = new SynthWorker(env, params, std::move(train), std::move(test), dtype == "float16", threads,
                                 info.Length() > 3 ? info[3] : env.Undefined());
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value SynthFloatToHalf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, "synthFloatToHalf expects a Float32Array");
  Napi::Float32Array in = info[0].As<Napi::Float32Array>();
  Napi::Uint16Array out = Napi::Uint16Array::New(env, in.ElementLength());
  for (size_t i = 0; i < in.ElementLength(); ++i) out[i] = synth::float_to_half(in[i]);
  return out;
}

// synthMathCheck('exp' | 'log' | 'tanh', Float64Array) -> Float64Array: the
// generator's own elementary functions, so tests can compare them with libm.
Napi::Value SynthMathCheck(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw Napi::TypeError::New(env, "synthMathCheck(name, Float64Array)");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  double (*fn)(double) = name == "exp" ? synth::det_exp : name == "log" ? synth::det_log : name == "tanh" ? synth::det_tanh : nullptr;
  if (!fn) throw Napi::RangeError::New(env, "synthMathCheck: unknown function '" + name + "'");
  Napi::Float64Array in = info[1].As<Napi::Float64Array>();
  Napi::Float64Array out = Napi::Float64Array::New(env, in.ElementLength());
  for (size_t i = 0; i < in.ElementLength(); ++i) out[i] = fn(in[i]);
  return out;
}

}  // namespace

void register_synth(Napi::Env env, Napi::Object exports) {
  exports.Set("synthGenerate", Napi::Function::New(env, SynthGenerate, "synthGenerate"));
  exports.Set("synthFloatToHalf", Napi::Function::New(env, SynthFloatToHalf, "synthFloatToHalf"));
  exports.Set("synthMathCheck", Napi::Function::New(env, SynthMathCheck, "synthMathCheck"));
  exports.Set("synthVersion", Napi::Number::New(env, kSynthVersion));
}

}  // namespace xmc
