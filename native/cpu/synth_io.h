// Output formats of the synthetic data generator.
//
// - float32 -> float16 (IEEE binary16) with round-to-nearest-even, subnormals
//   and overflow to infinity handled exactly (float_to_half).
// - The NumPy .npy v1.0 header for a C-order 2-D array: magic "\x93NUMPY",
//   version 1.0, little-endian uint16 header length, then a Python dict literal
//   padded with spaces and a final '\n' so that the data starts at a multiple
//   of 64 bytes (npy_header).
// - A buffered binary file writer that reports failures with the path and the
//   OS error (OutputFile).
#pragma once
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

namespace xmc {
namespace synth {

inline uint16_t float_to_half(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) {  // infinity or NaN (NaN stays quiet NaN with its top payload bits)
    if (abs == 0x7F800000u) return sign | 0x7C00u;
    return static_cast<uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu));
  }
  // 65520 = halfway between 65504 (largest half) and 65536: ties to even go up, to infinity.
  if (abs >= 0x477FF000u) return sign | 0x7C00u;
  if (abs < 0x38800000u) {  // below 2^-14: a half subnormal (or zero)
    if (abs <= 0x33000000u) return sign;  // <= 2^-25 rounds to zero (2^-25 itself is a tie to even 0)
    const uint32_t exponent = abs >> 23;  // 102..112
    const uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - exponent;  // result counts units of 2^-24
    uint32_t result = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (result & 1u))) ++result;
    return static_cast<uint16_t>(sign | result);
  }
  const uint32_t rebased = abs - 0x38000000u;  // exponent bias 127 -> 15
  uint32_t result = rebased >> 13;
  const uint32_t rest = rebased & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (result & 1u))) ++result;  // a carry into the exponent is right
  return static_cast<uint16_t>(sign | result);
}

// The full .npy v1.0 header (magic, version, length, padded dict) for a C-order rows x cols array.
inline std::string npy_header(const std::string& descr, uint64_t rows, uint64_t cols) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" +
                     std::to_string(rows) + ", " + std::to_string(cols) + "), }";
  const size_t preamble = 10;  // magic (6) + version (2) + header length (2)
  size_t total = preamble + dict.size() + 1;
  const size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(dict.size() & 0xFF));
  out.push_back(static_cast<char>((dict.size() >> 8) & 0xFF));
  out += dict;
  return out;
}

// A file opened for writing with a large stdio buffer. Every failure throws
// std::runtime_error naming the path and the OS error.
class OutputFile {
 public:
  OutputFile() = default;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile() {
    if (file_) std::fclose(file_);
  }

  void open(const std::string& path, size_t buffer_bytes = size_t(4) << 20) {
    path_ = path;
    file_ = std::fopen(path.c_str(), "wb");
    if (!file_) fail("cannot open for writing");
    buffer_.reset(new char[buffer_bytes]);
    if (std::setvbuf(file_, buffer_.get(), _IOFBF, buffer_bytes) != 0) fail("cannot set a write buffer");
  }

  void write(const void* data, size_t bytes) {
    if (bytes == 0) return;
    if (std::fwrite(data, 1, bytes, file_) != bytes) fail("write failed");
    bytes_written_ += bytes;
  }
  void write(const std::string& s) { write(s.data(), s.size()); }

  void close() {
    if (!file_) return;
    errno = 0;
    const bool flush_failed = std::fflush(file_) != 0;
    const int flush_errno = errno;
    const bool close_failed = std::fclose(file_) != 0;
    file_ = nullptr;
    if (flush_failed || close_failed) {
      errno = flush_failed ? flush_errno : errno;
      fail("closing failed");
    }
  }

  uint64_t bytes_written() const { return bytes_written_; }
  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(const char* what) const {
    const int err = errno;
    throw std::runtime_error(path_ + ": " + what + (err ? std::string(": ") + std::strerror(err) : std::string()));
  }

  std::string path_;
  std::FILE* file_ = nullptr;
  std::unique_ptr<char[]> buffer_;
  uint64_t bytes_written_ = 0;
};

}  // namespace synth
}  // namespace xmc
