// Per-pixel letterbox math shared by the C++ core (cpp/src/preprocess) and the CUDA kernels
// (kernels/letterbox.cu). Everything here is CAPER_HD: the CPU tests that compare the C++ core
// with OpenCV therefore also cover the arithmetic the GPU runs. No CUDA headers except under
// __CUDACC__, no pybind11, no allocation.
//
// The arithmetic is chosen so that every path (CPU reference, CPU fast loops, GPU) rounds the
// same way: integer source-coordinate math, one fixed lerp formula, one affine normalisation,
// and IEEE float without contraction (the build passes -ffp-contract=off / --fmad=false).
#pragma once

#include <cstdint>
#include <cstring>

#include "caper/hd.hpp"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

namespace caper::preprocess {

// Input pixel layouts. The numeric values are part of the binding ABI (see bind_preprocess.cpp).
enum class PixelFormat : int {
  kRGB8 = 0,  // H x W x 3 uint8, R G B
  kBGR8 = 1,  // H x W x 3 uint8, B G R
  kYUYV = 2,  // H x W x 2 uint8, Y0 U Y1 V per pair of pixels (YUY2), BT.601 limited range
  kGray = 3,  // H x W uint8, replicated into R, G and B
};

// Bytes per pixel of a packed row (YUYV: 2, i.e. 4 bytes per pair).
CAPER_HD constexpr int bytes_per_pixel(PixelFormat f) {
  return f == PixelFormat::kGray ? 1 : (f == PixelFormat::kYUYV ? 2 : 3);
}

// ---------------------------------------------------------------------------------------------
// Source coordinates (OpenCV INTER_LINEAR pixel-centre convention)
// ---------------------------------------------------------------------------------------------

// The two source taps and the weight of the second for destination index `d` along one axis,
// when `src_len` source pixels are resized to `dst_len`.
struct AxisTap {
  int i0;   // first tap, 0 <= i0 < src_len
  int i1;   // second tap, i0 <= i1 <= min(i0 + 1, src_len - 1)
  float w;  // weight of i1 in [0, 1); 0 when clamped at either border
};

// src = (d + 0.5) * src_len / dst_len - 0.5, clamped at the borders as OpenCV does. Computed
// exactly in integers: src = num / den with num = (2d + 1) * src_len - dst_len, den = 2 * dst_len,
// so CPU and GPU agree bit for bit and no double precision is needed on the device.
// Requires src_len, dst_len in [1, kMaxSide] so that the products fit in int32.
constexpr int kMaxSide = 32767;

CAPER_HD inline AxisTap axis_tap(int d, int src_len, int dst_len) {
  const int num = (2 * d + 1) * src_len - dst_len;
  const int den = 2 * dst_len;
  if (num <= 0) return AxisTap{0, 0, 0.0f};
  const int i0 = num / den;
  if (i0 >= src_len - 1) return AxisTap{src_len - 1, src_len - 1, 0.0f};
  const int rem = num - i0 * den;
  return AxisTap{i0, i0 + 1, static_cast<float>(rem) / static_cast<float>(den)};
}

// ---------------------------------------------------------------------------------------------
// Colour conversion
// ---------------------------------------------------------------------------------------------

// BT.601 limited range, bit-exact with OpenCV's COLOR_YUV2RGB_YUYV (20-bit fixed point):
//   R = 1.164 (Y-16) + 1.596 (V-128),  G = 1.164 (Y-16) - 0.813 (V-128) - 0.391 (U-128),
//   B = 1.164 (Y-16) + 2.018 (U-128), each rounded and saturated to 0..255.
// Matching OpenCV's integer rounding (rather than converting in float) keeps the fused path
// within half a grey level of the reference chain, which rounds to uint8 after cvtColor.
constexpr int kYuvShift = 20;
constexpr int kYuvCY = 1220542;
constexpr int kYuvCUB = 2116026;
constexpr int kYuvCUG = -409993;
constexpr int kYuvCVG = -852492;
constexpr int kYuvCVR = 1673527;
constexpr int kYuvRound = 1 << (kYuvShift - 1);

CAPER_HD inline uint8_t clamp_u8(int v) { return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v)); }

struct Rgb8 {
  uint8_t r, g, b;
};

// Chroma terms of one YUYV pair, shared by its two pixels.
struct YuvChroma {
  int ruv, guv, buv;
};

CAPER_HD inline YuvChroma yuv_chroma(int u, int v) {
  const int uu = u - 128;
  const int vv = v - 128;
  return YuvChroma{kYuvRound + kYuvCVR * vv, kYuvRound + kYuvCVG * vv + kYuvCUG * uu, kYuvRound + kYuvCUB * uu};
}

CAPER_HD inline Rgb8 yuv_to_rgb(int y, YuvChroma c) {
  const int yy = (y > 16 ? y - 16 : 0) * kYuvCY;
  return Rgb8{clamp_u8((yy + c.ruv) >> kYuvShift), clamp_u8((yy + c.guv) >> kYuvShift),
              clamp_u8((yy + c.buv) >> kYuvShift)};
}

// RGB of pixel `x` of one packed source row in format F.
template <PixelFormat F>
CAPER_HD inline Rgb8 load_rgb(const uint8_t* row, int x) {
  if constexpr (F == PixelFormat::kRGB8) {
    const uint8_t* p = row + 3 * x;
    return Rgb8{p[0], p[1], p[2]};
  } else if constexpr (F == PixelFormat::kBGR8) {
    const uint8_t* p = row + 3 * x;
    return Rgb8{p[2], p[1], p[0]};
  } else if constexpr (F == PixelFormat::kGray) {
    return Rgb8{row[x], row[x], row[x]};
  } else {
    const uint8_t* pair = row + 4 * (x >> 1);
    return yuv_to_rgb(row[2 * x], yuv_chroma(pair[1], pair[3]));
  }
}

// ---------------------------------------------------------------------------------------------
// Interpolation and normalisation
// ---------------------------------------------------------------------------------------------

// a + (b - a) * w: exact when w == 0, and (a + b) / 2 exactly when w == 0.5 for grey levels,
// which is what lets the CPU's exact-2x loop sum four pixels and still match this formula.
CAPER_HD inline float lerp(float a, float b, float w) { return a + (b - a) * w; }

// Bilinear value of one channel from the four taps: horizontal first, then vertical.
CAPER_HD inline float bilinear(float p00, float p01, float p10, float p11, float wx, float wy) {
  return lerp(lerp(p00, p01, wx), lerp(p10, p11, wx), wy);
}

// ((p * scale) - mean) / std folded into one affine map per channel: v * gain + bias, with
// gain = scale / std and bias = -mean / std computed once in double on the host.
struct Affine {
  float gain[3];
  float bias[3];
};

CAPER_HD inline float normalize(float v, float gain, float bias) { return v * gain + bias; }

// ---------------------------------------------------------------------------------------------
// float -> IEEE half (round to nearest even), as raw bits
// ---------------------------------------------------------------------------------------------

// Portable software conversion; the vector loops use F16C / AVX-512 / NEON instructions that
// round identically (RNE, subnormals kept, NaN stays NaN, overflow to infinity).
CAPER_HD inline uint16_t float_to_half_bits_soft(float f) {
  uint32_t x;
#if defined(__CUDA_ARCH__)
  x = __float_as_uint(f);
#else
  std::memcpy(&x, &f, sizeof x);
#endif
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) {  // inf or NaN: keep a quiet NaN payload bit
    return static_cast<uint16_t>(sign | 0x7c00u | (absx > 0x7f800000u ? 0x0200u | ((absx >> 13) & 0x3ffu) : 0u));
  }
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (absx < 0x38800000u) {                                                // half subnormal or zero
    if (absx < 0x33000000u) return static_cast<uint16_t>(sign);           // < 2^-25: rounds to 0
    const uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    const int shift = 126 - static_cast<int>(absx >> 23);  // 14..24
    const uint32_t h = mant >> shift;
    const uint32_t rest = mant & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1);
    const uint32_t up = (rest > halfway || (rest == halfway && (h & 1u))) ? 1u : 0u;
    return static_cast<uint16_t>(sign | (h + up));
  }
  const uint32_t h = ((absx - 0x38000000u) >> 13);  // rebias exponent 127 -> 15
  const uint32_t rest = absx & 0x1fffu;
  const uint32_t up = (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ? 1u : 0u;
  return static_cast<uint16_t>(sign | (h + up));
}

CAPER_HD inline uint16_t float_to_half_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(f));
#else
  return float_to_half_bits_soft(f);
#endif
}

// ---------------------------------------------------------------------------------------------
// One output pixel, the definition every path implements
// ---------------------------------------------------------------------------------------------

// Geometry of one letterbox call (see letterbox_geometry in preprocess.hpp).
struct Geometry {
  int src_h, src_w;  // input image
  int dst_h, dst_w;  // output tensor planes
  int new_h, new_w;  // resized image inside the output
  int pad_y, pad_x;  // top / left border
  double r;          // min(dst_h / src_h, dst_w / src_w)
};

// The three normalised RGB values of output pixel (x, y). `src` points at the first row,
// `row_stride` is in bytes. This is what the CUDA kernel runs per thread and what the CPU
// reference loop runs per pixel; the CPU fast loops are tested against it.
template <PixelFormat F>
CAPER_HD inline void letterbox_pixel(const uint8_t* src, long long row_stride, const Geometry& g, const Affine& n,
                                     float pad_value, int x, int y, float out[3]) {
  const int ix = x - g.pad_x;
  const int iy = y - g.pad_y;
  float v[3];
  if (ix < 0 || iy < 0 || ix >= g.new_w || iy >= g.new_h) {
    v[0] = v[1] = v[2] = pad_value;
  } else {
    const AxisTap tx = axis_tap(ix, g.src_w, g.new_w);
    const AxisTap ty = axis_tap(iy, g.src_h, g.new_h);
    const uint8_t* row0 = src + ty.i0 * row_stride;
    const uint8_t* row1 = src + ty.i1 * row_stride;
    const Rgb8 p00 = load_rgb<F>(row0, tx.i0), p01 = load_rgb<F>(row0, tx.i1);
    const Rgb8 p10 = load_rgb<F>(row1, tx.i0), p11 = load_rgb<F>(row1, tx.i1);
    v[0] = bilinear(p00.r, p01.r, p10.r, p11.r, tx.w, ty.w);
    v[1] = bilinear(p00.g, p01.g, p10.g, p11.g, tx.w, ty.w);
    v[2] = bilinear(p00.b, p01.b, p10.b, p11.b, tx.w, ty.w);
  }
  for (int c = 0; c < 3; ++c) out[c] = normalize(v[c], n.gain[c], n.bias[c]);
}

}  // namespace caper::preprocess
