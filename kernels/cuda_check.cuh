// Every CUDA runtime call goes through CAPER_CUDA_CHECK: a failure becomes a std::runtime_error
// (RuntimeError in Python) naming the call, the file and line, and CUDA's own error text, instead
// of a silently ignored status code. Kernel launches are checked with CAPER_CUDA_CHECK_LAUNCH().
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace caper::cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  // Clear a non-sticky error so that the next call on this thread starts clean.
  cudaGetLastError();
  throw std::runtime_error(std::string("CUDA error in ") + expr + " at " + file + ":" + std::to_string(line) +
                           ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

}  // namespace caper::cuda

#define CAPER_CUDA_CHECK(expr)                                                      \
  do {                                                                              \
    const cudaError_t caper_cuda_err_ = (expr);                                     \
    if (caper_cuda_err_ != cudaSuccess) {                                           \
      ::caper::cuda::throw_cuda_error(caper_cuda_err_, #expr, __FILE__, __LINE__);  \
    }                                                                               \
  } while (0)

namespace caper::cuda {

// Makes `device` current for a scope and restores the caller's device afterwards, so an entry
// point working on the device that owns a pointer leaves the thread's CUDA context as it found it.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    CAPER_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device != previous_) CAPER_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }  // best effort: destructors must not throw
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// The device that owns `ptr` (device or managed memory); std::invalid_argument for host memory.
inline int device_of(const void* ptr, const char* what) {
  cudaPointerAttributes attr{};
  CAPER_CUDA_CHECK(cudaPointerGetAttributes(&attr, ptr));
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged) {
    throw std::invalid_argument(std::string(what) + " must point to CUDA device memory, got a " +
                                (attr.type == cudaMemoryTypeHost ? "pinned host" : "host") + " pointer");
  }
  return attr.device;
}

}  // namespace caper::cuda

// After a <<<...>>> launch: configuration errors surface here, execution errors at the next sync.
#define CAPER_CUDA_CHECK_LAUNCH() CAPER_CUDA_CHECK(cudaPeekAtLastError())
