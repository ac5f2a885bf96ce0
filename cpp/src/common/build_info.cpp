#include "caper/build_info.hpp"

namespace caper {

BuildInfo build_info() {
  BuildInfo b;
#if defined(__clang__)
  b.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  b.compiler = "gcc " __VERSION__;
#else
  b.compiler = "unknown";
#endif
  b.cxx_standard = static_cast<int>(__cplusplus / 100 % 100);
#if defined(__OPTIMIZE__)
  b.optimized = true;
#endif
#if defined(CAPER_HAVE_CUDA)
  b.cuda_compiled = true;
#endif
#if defined(CAPER_CUDA_ARCHITECTURES)
  b.cuda_architectures = CAPER_CUDA_ARCHITECTURES;
#endif
#if defined(CAPER_HAVE_NVJPEG)
  b.nvjpeg_compiled = true;
#endif
#if defined(__AVX512F__)
  b.simd = "avx512f";
#elif defined(__AVX2__)
  b.simd = "avx2";
#elif defined(__SSE4_2__)
  b.simd = "sse4.2";
#elif defined(__SSE2__)
  b.simd = "sse2";
#elif defined(__ARM_NEON)
  b.simd = "neon";
#else
  b.simd = "scalar";
#endif
  return b;
}

}  // namespace caper
