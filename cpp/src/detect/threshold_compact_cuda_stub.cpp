// CPU-only builds: the CUDA decode entry point exists and says why it cannot run.
#if !defined(CAPER_HAVE_CUDA)
#include <stdexcept>

#include "caper/detect.hpp"

namespace caper::detect {

void threshold_compact_cuda(const void*, bool, int64_t, int64_t, float, std::uintptr_t, std::uintptr_t,
                            std::vector<Candidate>*) {
  throw std::runtime_error(
      "caper_edge._core was built without CUDA (no nvcc found, or CAPER_EDGE_CUDA=OFF): "
      "decode_cuda is unavailable; use caper_edge.detect.decode on a host array");
}

}  // namespace caper::detect
#endif
