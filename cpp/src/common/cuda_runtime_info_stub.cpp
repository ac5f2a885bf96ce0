// CPU-only builds: the same entry points, reporting why there is no GPU.
#if !defined(CAPER_HAVE_CUDA)
#include "caper/cuda_runtime_info.hpp"

namespace caper::cuda {

int device_count(std::string* reason) {
  if (reason) *reason = "caper_edge._core was built without CUDA (no nvcc found, or CAPER_EDGE_CUDA=OFF)";
  return 0;
}

std::string device_name(int) { return {}; }

}  // namespace caper::cuda
#endif
