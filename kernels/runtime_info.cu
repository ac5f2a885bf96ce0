// Runtime GPU discovery. Linked against static cudart, which opens libcuda lazily: on a machine
// with no driver cudaGetDeviceCount returns an error code instead of failing the import.
#include <cuda_runtime.h>

#include <string>

#include "caper/cuda_runtime_info.hpp"

namespace caper::cuda {

int device_count(std::string* reason) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (reason) *reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  if (n == 0 && reason) *reason = "no CUDA device visible";
  return n;
}

std::string device_name(int index) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
    cudaGetLastError();
    return {};
  }
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
}

}  // namespace caper::cuda
