// Detector input preprocessing on the CPU: the fused letterbox (colour conversion, bilinear
// resize, border, normalisation, HWC -> CHW in one pass over the output) and depth helpers.
// The per-pixel math lives in preprocess_math.hpp, shared with kernels/letterbox.cu.
#pragma once

#include <cstddef>
#include <cstdint>

#include "caper/preprocess_math.hpp"

namespace caper::preprocess {

enum class OutType : int {
  kFloat32 = 0,
  kFloat16 = 1,  // IEEE binary16, stored as uint16 bits
};

// Contract geometry: r = min(dst_h / src_h, dst_w / src_w); new_w = round_half_even(src_w * r)
// (likewise new_h), clamped to [1, dst]; pad_x = (dst_w - new_w) / 2; pad_y = (dst_h - new_h) / 2.
// The clamp to >= 1 only matters for extreme aspect ratios (e.g. a 1 x 4000 strip into 640 x 640)
// where rounding would give an empty image. Throws std::invalid_argument unless every side is in
// [1, kMaxSide].
Geometry letterbox_geometry(int src_h, int src_w, int dst_h, int dst_w);

// ((p * scale) - mean[c]) / std[c] as a per-channel affine map (computed in double, stored as
// float). Throws std::invalid_argument when a std is zero or a value is not finite.
Affine make_affine(double scale, const double mean[3], const double std[3]);

// A packed 8-bit source image; row_stride in bytes (>= width * bytes_per_pixel(format)).
struct ImageView {
  const uint8_t* data;
  int height;
  int width;
  std::ptrdiff_t row_stride;
  PixelFormat format;
};

// Normalised letterbox into `out`, C-contiguous (3, g.dst_h, g.dst_w) planes R, G, B of `type`.
// One pass over the output: every element is written exactly once, and only row-sized scratch
// (a few KiB, reused per thread) is allocated. Fast loops cover the identity scale and exact
// 2x downscale; other scales use per-column tap tables and a two-row cache of horizontally
// resampled rows. Thread-safe; the caller must not overlap `out` with the image.
// Requires image.width even for YUYV, and g computed from the image's size.
void letterbox(const ImageView& image, const Geometry& g, const Affine& norm, uint8_t pad_value, OutType type,
               void* out);

// The same result computed one output pixel at a time with letterbox_pixel(), the function the
// CUDA kernel runs per thread. Slow; exists so tests can check the fast CPU loops (and thus the
// GPU math) against the definition.
void letterbox_reference(const ImageView& image, const Geometry& g, const Affine& norm, uint8_t pad_value,
                         OutType type, void* out);

// Convert n floats to IEEE half bits, round to nearest even (F16C / AVX-512 / NEON when the
// build targets them, float_to_half_bits_soft otherwise).
void floats_to_half(const float* in, uint16_t* out, std::size_t n);

// ---------------------------------------------------------------------------------------------
// Depth
// ---------------------------------------------------------------------------------------------

// metres[i] = raw[i] * depth_scale for raw[i] != 0, and `invalid_value` where raw[i] == 0
// (a RealSense zero means "no measurement").
void depth_to_meters(const uint16_t* raw, std::size_t n, float depth_scale, float invalid_value, float* out);

// Median of the non-zero depth values inside each box, times depth_scale (metres), found by
// radix selection on the 16-bit values (two histogram passes over the box, no copy).
// boxes: n x 4 (x1, y1, x2, y2) in pixel coordinates, pixel (u, v) covering [u, u+1) x [v, v+1);
// the box is first shrunk about its centre to `inner_fraction` of its width and height (1: the
// whole box), then every pixel it overlaps is used: u in [floor(x1), ceil(x2)), clipped to the
// image. With an even count the two middle values are averaged (as numpy.median).
// Result is NaN for a box that covers no pixel or only zeros. Non-finite boxes give NaN.
void median_depth(const uint16_t* depth, int height, int width, const float* boxes, std::size_t n_boxes,
                  float depth_scale, float inner_fraction, float* out);

}  // namespace caper::preprocess
