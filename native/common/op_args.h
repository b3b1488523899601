// The argument handling that the CPU and CUDA backends share, word for word:
// dtypes and shapes of tensors, and the checks of an op entry point
// (addon.<op>(backend, ...args)) with their messages, "<op>: <what>" thrown as
// TypeError (wrong kind of value) or RangeError (right kind, bad value).
// Each backend's OpCall derives from OpArgs and adds how it unwraps its own
// backend and tensors (native/cpu/backend.h, native/cuda/backend.h).
#pragma once
#include <napi.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace xmc::common {

enum class DType : int { Float32 = 0, Int32 = 1, Uint32 = 2 };
const char* dtype_name(DType d);
// "[2, 3]"; a negative dimension (any) prints as "*".
std::string shape_string(const std::vector<int64_t>& shape);
// `where` names the caller in the messages, e.g. "backend.tensor".
DType parse_dtype(Napi::Env env, const Napi::Value& v, const char* where);
std::vector<int64_t> parse_shape(Napi::Env env, const Napi::Value& v, const char* where);
// Creates a JS Int32Array/Float32Array/... over `ab` for tensor results.
Napi::Value typed_array_for(Napi::Env env, DType dtype, Napi::ArrayBuffer ab, size_t length);

class OpArgs {
 public:
  OpArgs(const Napi::CallbackInfo& info, const char* op) : info_(info), op_(op) {}

  Napi::Env env() const { return info_.Env(); }
  const char* op() const { return op_; }
  const Napi::CallbackInfo& info() const { return info_; }

  Napi::Object options(size_t index) const;  // undefined: {}
  // A number argument or option; `integer` demands an integer. Range is inclusive.
  double number(size_t index, const char* name, double lo, double hi, bool integer) const;
  double option(const Napi::Object& opts, const char* key, std::optional<double> fallback, double lo, double hi,
                bool integer) const;
  std::string string_option(const Napi::Object& opts, const char* key, const std::string& fallback,
                            const std::vector<std::string>& choices) const;
  bool bool_option(const Napi::Object& opts, const char* key, bool fallback) const;

  [[noreturn]] void type_error(const std::string& what) const;
  [[noreturn]] void range_error(const std::string& what) const;

  // Checks of a backend's tensors (fields dtype, shape, size; same_storage()).
  template <class Tensor>
  void expect_dtype(const Tensor& t, const char* name, DType dtype) const {
    if (t.dtype != dtype) dtype_error(name, dtype, t.dtype);
  }
  template <class Tensor>
  void expect_index_dtype(const Tensor& t, const char* name) const {  // int32 or uint32
    if (t.dtype == DType::Float32)
      type_error(std::string("argument ") + name + " must be an index tensor (uint32 or int32), got float32");
  }
  // expected dims, -1 = any; `symbolic` names them, e.g. "[B, I]".
  template <class Tensor>
  void expect_shape(const Tensor& t, const char* name, const std::vector<int64_t>& expected,
                    const char* symbolic) const {
    check_shape(t.shape, name, expected, symbolic);
  }
  template <class Tensor>
  void expect_same_shape(const Tensor& t, const char* name, const Tensor& ref, const char* ref_name) const {
    if (t.shape != ref.shape) same_shape_error(name, t.shape, ref_name, ref.shape);
  }
  template <class Tensor>
  void expect_distinct(const Tensor& a, const char* a_name, const Tensor& b, const char* b_name) const {
    if (a.same_storage(b) && a.size > 0)
      range_error(std::string("arguments ") + a_name + " and " + b_name +
                  " must be different tensors (no aliasing here)");
  }

 protected:
  const Napi::CallbackInfo& info_;
  const char* op_;

 private:
  [[noreturn]] void dtype_error(const char* name, DType expected, DType got) const;
  void check_shape(const std::vector<int64_t>& shape, const char* name, const std::vector<int64_t>& expected,
                   const char* symbolic) const;
  [[noreturn]] void same_shape_error(const char* name, const std::vector<int64_t>& shape, const char* ref_name,
                                     const std::vector<int64_t>& ref_shape) const;
};

}  // namespace xmc::common
