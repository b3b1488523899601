// See op_args.h. The messages are part of the API: tests check them word for word.
#include "op_args.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace xmc::common {

const char* dtype_name(DType d) {
  switch (d) {
    case DType::Float32: return "float32";
    case DType::Int32: return "int32";
    case DType::Uint32: return "uint32";
  }
  return "?";
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += shape[i] < 0 ? std::string("*") : std::to_string(shape[i]);
  }
  return s + "]";
}

DType parse_dtype(Napi::Env env, const Napi::Value& v, const char* where) {
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s == "float32") return DType::Float32;
    if (s == "int32") return DType::Int32;
    if (s == "uint32") return DType::Uint32;
  }
  throw Napi::TypeError::New(env, std::string(where) + ": dtype must be 'float32', 'int32' or 'uint32'");
}

std::vector<int64_t> parse_shape(Napi::Env env, const Napi::Value& v, const char* where) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, std::string(where) + ": shape must be an array of dimensions");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > 8) throw Napi::RangeError::New(env, std::string(where) + ": shape has more than 8 dimensions");
  std::vector<int64_t> shape;
  double total = 1;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value d = a.Get(i);
    double x = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 0) || x != std::floor(x) || x > 4294967295.0)
      throw Napi::RangeError::New(env, std::string(where) + ": shape[" + std::to_string(i) +
                                           "] must be an integer in [0, 2^32), got " + d.ToString().Utf8Value());
    shape.push_back(static_cast<int64_t>(x));
    total *= x;
  }
  if (total > 1099511627776.0) throw Napi::RangeError::New(env, std::string(where) + ": tensor has more than 2^40 elements");
  return shape;
}

Napi::Value typed_array_for(Napi::Env env, DType dtype, Napi::ArrayBuffer ab, size_t length) {
  switch (dtype) {
    case DType::Float32: return Napi::Float32Array::New(env, length, ab, 0);
    case DType::Int32: return Napi::Int32Array::New(env, length, ab, 0);
    case DType::Uint32: return Napi::Uint32Array::New(env, length, ab, 0);
  }
  return env.Undefined();
}

void OpArgs::type_error(const std::string& what) const {
  throw Napi::TypeError::New(env(), std::string(op_) + ": " + what);
}

void OpArgs::range_error(const std::string& what) const {
  throw Napi::RangeError::New(env(), std::string(op_) + ": " + what);
}

Napi::Object OpArgs::options(size_t index) const {
  if (index >= info_.Length() || info_[index].IsUndefined()) return Napi::Object::New(env());
  if (!info_[index].IsObject()) type_error("options must be an object");
  return info_[index].As<Napi::Object>();
}

static std::string number_text(double x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

double OpArgs::number(size_t index, const char* name, double lo, double hi, bool integer) const {
  Napi::Value v = index < info_.Length() ? info_[index] : env().Undefined();
  if (!v.IsNumber()) type_error(std::string("argument ") + name + " must be a number, got " + v.ToString().Utf8Value());
  double x = v.As<Napi::Number>().DoubleValue();
  if (!(x >= lo && x <= hi) || (integer && x != std::floor(x)))
    range_error(std::string("argument ") + name + " must be " + (integer ? "an integer" : "a number") + " in [" +
                number_text(lo) + ", " + number_text(hi) + "], got " + number_text(x));
  return x;
}

double OpArgs::option(const Napi::Object& opts, const char* key, std::optional<double> fallback, double lo, double hi,
                      bool integer) const {
  Napi::Value v = opts.Get(key);
  if (v.IsUndefined()) {
    if (!fallback) type_error(std::string("option ") + key + " is required");
    return *fallback;
  }
  if (!v.IsNumber()) type_error(std::string("option ") + key + " must be a number, got " + v.ToString().Utf8Value());
  double x = v.As<Napi::Number>().DoubleValue();
  if (!(x >= lo && x <= hi) || (integer && x != std::floor(x)))
    range_error(std::string("option ") + key + " must be " + (integer ? "an integer" : "a number") + " in [" +
                number_text(lo) + ", " + number_text(hi) + "], got " + number_text(x));
  return x;
}

bool OpArgs::bool_option(const Napi::Object& opts, const char* key, bool fallback) const {
  Napi::Value v = opts.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) type_error(std::string("option ") + key + " must be a boolean, got " + v.ToString().Utf8Value());
  return v.As<Napi::Boolean>().Value();
}

std::string OpArgs::string_option(const Napi::Object& opts, const char* key, const std::string& fallback,
                                  const std::vector<std::string>& choices) const {
  Napi::Value v = opts.Get(key);
  if (v.IsUndefined()) return fallback;
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
  if (std::find(choices.begin(), choices.end(), s) == choices.end()) {
    std::string list;
    for (auto& c : choices) list += (list.empty() ? "'" : ", '") + c + "'";
    type_error(std::string("option ") + key + " must be one of " + list + ", got " + v.ToString().Utf8Value());
  }
  return s;
}

void OpArgs::dtype_error(const char* name, DType expected, DType got) const {
  type_error(std::string("argument ") + name + " must be " + dtype_name(expected) + ", got " + dtype_name(got));
}

void OpArgs::check_shape(const std::vector<int64_t>& shape, const char* name, const std::vector<int64_t>& expected,
                         const char* symbolic) const {
  bool ok = shape.size() == expected.size();
  for (size_t i = 0; ok && i < expected.size(); ++i) ok = expected[i] < 0 || expected[i] == shape[i];
  if (!ok)
    range_error(std::string("argument ") + name + " must have shape " + symbolic + " = " + shape_string(expected) +
                ", got " + shape_string(shape));
}

void OpArgs::same_shape_error(const char* name, const std::vector<int64_t>& shape, const char* ref_name,
                              const std::vector<int64_t>& ref_shape) const {
  range_error(std::string("argument ") + name + " must have the shape of " + ref_name + " " + shape_string(ref_shape) +
              ", got " + shape_string(shape));
}

}  // namespace xmc::common
