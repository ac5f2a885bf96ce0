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

// After a <<<...>>> launch: configuration errors surface here, execution errors at the next sync.
#define CAPER_CUDA_CHECK_LAUNCH() CAPER_CUDA_CHECK(cudaPeekAtLastError())
