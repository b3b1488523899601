// Run-time checks of the CUDA backend: error reporting of CUDA calls and the
// device-side failure record (DeviceStatus, kernels.h).
//
//   check(err, op, call)     throws CudaFailure "<op>: <call> failed: <CUDA message>"
//   finalize_checks          one thread: the smallest candidate (rank << 48 | position)
//                            recorded by the running op becomes the status record
//                            {code = rank, serial, position, v0, v1}, unless an
//                            earlier op already failed; the candidate is cleared.
//
// The record is read by the next promise-bearing task (backend.cc), which
// formats the message with the formatter the op registered under its serial
// and clears the block; until then every kernel returns at its first line.
#include <string>

#include "common.cuh"

namespace xmc::cuda {

void check(cudaError_t err, const char* op, const char* call) {
  if (err == cudaSuccess) return;
  std::string msg = std::string(op) + ": " + call + " failed: " + cudaGetErrorString(err) + " (" + cudaGetErrorName(err) + ")";
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it
    throw DeviceOutOfMemory(msg);
  }
  throw CudaFailure(msg);
}

void check_launch(const char* op, const char* kernel) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) check(err, op, (std::string("launch of ") + kernel).c_str());
}

namespace {

__global__ void finalize_kernel(DeviceStatus* status, uint32_t serial, CheckValues values) {
  const unsigned long long candidate = status->candidate;
  if (candidate != 0 && status->code == 0) {
    const unsigned long long key = ~candidate;
    const uint32_t rank = static_cast<uint32_t>(key >> 48);
    const unsigned long long position = key & ((1ull << 48) - 1);
    status->serial = serial;
    status->position = position;
    const int r = rank >= 1 && rank <= 4 ? static_cast<int>(rank) - 1 : 0;
    status->v0 = values.v0_src[r] ? values.v0_src[r][position] : 0;
    status->v1 = values.v1_src[r] ? values.v1_src[r][position] : 0;
    status->code = rank;
  }
  status->candidate = 0;
}

}  // namespace

void finalize_checks(const Launch& ctx, uint32_t serial, const CheckValues& values) {
  finalize_kernel<<<1, 1, 0, ctx.stream>>>(ctx.status, serial, values);
  check_launch(ctx.op, "finalize_kernel");
}

}  // namespace xmc::cuda
