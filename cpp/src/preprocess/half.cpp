// float -> IEEE half for whole rows. Hardware conversion where the build targets it (x86 F16C /
// AVX-512F, AArch64's native __fp16); the software routine in preprocess_math.hpp otherwise and
// for tails. All of them round to nearest even, so the output does not depend on the path.
#include <cstring>

#include "caper/preprocess.hpp"

#if defined(__AVX512F__) || defined(__F16C__)
#include <immintrin.h>
// GCC 12 reports -Wmaybe-uninitialized inside its own AVX-512 headers (the _mm512_undefined_*
// pass-through operands) wherever those intrinsics inline; nothing of ours is uninitialised.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace caper::preprocess {

void floats_to_half(const float* in, uint16_t* out, std::size_t n) {
  std::size_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), h);
  }
#endif
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
#endif
#if defined(__aarch64__)
  // The compiler turns this into FCVTN vector conversions (round to nearest even per FPCR).
  for (; i < n; ++i) {
    const __fp16 h = static_cast<__fp16>(in[i]);
    std::memcpy(out + i, &h, sizeof h);
  }
#endif
  for (; i < n; ++i) out[i] = float_to_half_bits_soft(in[i]);
}

}  // namespace caper::preprocess
