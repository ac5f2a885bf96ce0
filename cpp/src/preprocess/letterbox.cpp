// The fused CPU letterbox. One pass over the output, a row at a time: every output element is
// written once; source rows are converted in per-thread row buffers (planar RGB8, or 32-bit
// words for the general loop), then resampled, normalised and stored into the three planes
// together.
//
// Three row kernels, chosen once per call from the geometry; all of them compute exactly what
// letterbox_pixel() (preprocess_math.hpp) defines, bit for bit:
//   identity  new size == image size: convert + normalise (640x480 -> 640x640 lands here);
//   half      image exactly twice the new size: the taps are the 2x2 block with weights 1/2, so
//             the bilinear value is the exact mean (a+b+c+d)/4 (1280x720 -> 640x640 lands here);
//   general   per-column tap tables and a two-slot cache of horizontally resampled rows, so an
//             upscale resamples each source row once, not once per output row.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "caper/preprocess.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
// GCC 12 reports -Wmaybe-uninitialized inside its own AVX-512 headers (the _mm512_undefined_*
// pass-through operands) wherever those intrinsics inline; nothing of ours is uninitialised.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace caper::preprocess {

namespace {

// Row-sized scratch per thread, reused across calls (never a whole image).
struct Scratch {
  std::vector<uint8_t> planes;  // 2 slots x 3 planes x src_w; general path: one padded tap row
  std::vector<float> hrows;     // 2 slots x 3 planes x new_w, general path
  std::vector<uint32_t> rgbx;   // one yuyv row as RGBX words, general path
  std::vector<float> stage;     // 3 planes x dst_w, float16 output staging
  std::vector<int> x0, x1;      // per output column taps, general path
  std::vector<float> wx;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// A planar RGB view of one source row; for gray all three point at the row itself.
struct Planes {
  const uint8_t* c[3];
};

template <PixelFormat F>
Planes fetch_row(const uint8_t* row, int w, uint8_t* buf) {
  if constexpr (F == PixelFormat::kGray) {
    (void)w;
    (void)buf;
    return Planes{{row, row, row}};
  } else {
    uint8_t* __restrict r = buf;
    uint8_t* __restrict g = buf + w;
    uint8_t* __restrict b = buf + 2 * w;
    if constexpr (F == PixelFormat::kYUYV) {
      for (int k = 0; k < w / 2; ++k) {
        const uint8_t* p = row + 4 * k;
        const YuvChroma uv = yuv_chroma(p[1], p[3]);
        const Rgb8 a = yuv_to_rgb(p[0], uv);
        const Rgb8 e = yuv_to_rgb(p[2], uv);
        r[2 * k] = a.r;
        r[2 * k + 1] = e.r;
        g[2 * k] = a.g;
        g[2 * k + 1] = e.g;
        b[2 * k] = a.b;
        b[2 * k + 1] = e.b;
      }
    } else {
      constexpr int kR = F == PixelFormat::kRGB8 ? 0 : 2;
      constexpr int kB = 2 - kR;
      for (int x = 0; x < w; ++x) {
        r[x] = row[3 * x + kR];
        g[x] = row[3 * x + 1];
        b[x] = row[3 * x + kB];
      }
    }
    return Planes{{r, g, b}};
  }
}

// Where a row of floats goes: straight into the float32 planes, or into a staging row that is
// converted to half when the row is complete.
class OutRows {
 public:
  OutRows(OutType type, void* out, const Geometry& g, std::vector<float>& stage)
      : type_(type), out_(out), h_(g.dst_h), w_(g.dst_w) {
    if (type_ == OutType::kFloat16) {
      stage.resize(static_cast<std::size_t>(3) * w_);
      stage_ = stage.data();
    }
  }
  float* row(int c, int y) const {
    if (type_ == OutType::kFloat32) return static_cast<float*>(out_) + offset(c, y);
    return stage_ + static_cast<std::size_t>(c) * w_;
  }
  void finish(int y) const {
    if (type_ == OutType::kFloat32) return;
    for (int c = 0; c < 3; ++c) floats_to_half(row(c, y), static_cast<uint16_t*>(out_) + offset(c, y), w_);
  }
  // Rows [y0, y1) of plane c, all border: one contiguous block per plane.
  void fill_rows(int c, int y0, int y1, float value) const {
    const std::size_t n = static_cast<std::size_t>(y1 - y0) * w_;
    if (n == 0) return;
    if (type_ == OutType::kFloat32) {
      std::fill_n(static_cast<float*>(out_) + offset(c, y0), n, value);
    } else {
      uint16_t bits = 0;
      floats_to_half(&value, &bits, 1);
      std::fill_n(static_cast<uint16_t*>(out_) + offset(c, y0), n, bits);
    }
  }

 private:
  std::size_t offset(int c, int y) const { return (static_cast<std::size_t>(c) * h_ + y) * w_; }
  OutType type_;
  void* out_;
  int h_, w_;
  float* stage_ = nullptr;
};

// Identity and exact-2x loops: one plane of the resized part of an output row (columns
// [pad_x, pad_x + new_w)) from planar RGB8 source rows.

void normalize_u8(const uint8_t* __restrict p, int n, float gain, float bias, float* __restrict d) {
  for (int j = 0; j < n; ++j) d[j] = normalize(static_cast<float>(p[j]), gain, bias);
}

void normalize_half(const uint8_t* __restrict p0, const uint8_t* __restrict p1, int n, float gain, float bias,
                    float* __restrict d) {
  for (int j = 0; j < n; ++j) {
    const int sum = (p0[2 * j] + p0[2 * j + 1]) + (p1[2 * j] + p1[2 * j + 1]);
    d[j] = normalize(static_cast<float>(sum) * 0.25f, gain, bias);
  }
}

// ---- general path: horizontal resampling from a row of dword-addressable pixels -------------
//
// Each tap is read as the 32-bit little-endian word starting at the pixel's first byte, and the
// channel is (word >> shift[c]) & 0xff. With AVX-512 that is one gather per tap for all three
// channels of 16 output columns; elsewhere the same reads are scalar. The row must stay readable
// for 3 bytes past its last pixel (see tap_row).
struct TapRow {
  const uint8_t* base;  // first byte of the row
  int bpp;              // bytes per pixel step: 3 (rgb8/bgr8 in place), 1 (gray in place), 4 (RGBX)
  int shift[3];         // bit offset of R, G, B inside the 32-bit word
};

inline uint32_t load_word(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;  // the build targets little-endian CPUs (x86-64, AArch64)
}

// h[c * n + j] = lerp(channel c of tap x0[j], of tap x1[j], wx[j]); x0, x1 are byte offsets.
void resample_row(const TapRow& row, const int* __restrict x0, const int* __restrict x1, const float* __restrict wx,
                  int n, float* __restrict h) {
  int j = 0;
#if defined(__AVX512F__)
  const __m512i mask = _mm512_set1_epi32(0xff);
  const __m512i sh[3] = {_mm512_set1_epi32(row.shift[0]), _mm512_set1_epi32(row.shift[1]),
                         _mm512_set1_epi32(row.shift[2])};
  for (; j + 16 <= n; j += 16) {
    const __m512i g0 = _mm512_i32gather_epi32(_mm512_loadu_si512(x0 + j), row.base, 1);
    const __m512i g1 = _mm512_i32gather_epi32(_mm512_loadu_si512(x1 + j), row.base, 1);
    const __m512 w = _mm512_loadu_ps(wx + j);
    for (int c = 0; c < 3; ++c) {
      const __m512 a = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(g0, sh[c]), mask));
      const __m512 b = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(g1, sh[c]), mask));
      // lerp(a, b, w) = a + (b - a) * w, in the same order as the scalar function
      _mm512_storeu_ps(h + static_cast<std::size_t>(c) * n + j,
                       _mm512_add_ps(a, _mm512_mul_ps(_mm512_sub_ps(b, a), w)));
    }
  }
#endif
  for (; j < n; ++j) {
    const uint32_t p0 = load_word(row.base + x0[j]);
    const uint32_t p1 = load_word(row.base + x1[j]);
    for (int c = 0; c < 3; ++c) {
      const float a = static_cast<float>((p0 >> row.shift[c]) & 0xffu);
      const float b = static_cast<float>((p1 >> row.shift[c]) & 0xffu);
      h[static_cast<std::size_t>(c) * n + j] = lerp(a, b, wx[j]);
    }
  }
}

// Where the taps of source row `sy` are read from. rgb8 / bgr8 / gray are read in place, except
// the image's last row, copied into `pad` so the 32-bit reads never run past the buffer; yuyv
// is converted to RGBX words in `rgbx` (the same yuv_to_rgb as everywhere else).
template <PixelFormat F>
TapRow tap_row(const uint8_t* src, int w, bool last_row, std::vector<uint8_t>& pad, std::vector<uint32_t>& rgbx) {
  constexpr int kBpp = F == PixelFormat::kYUYV ? 4 : bytes_per_pixel(F);
  TapRow t{src, kBpp, {0, 8, 16}};
  if constexpr (F == PixelFormat::kBGR8) {
    t.shift[0] = 16;
    t.shift[2] = 0;
  } else if constexpr (F == PixelFormat::kGray) {
    t.shift[1] = t.shift[2] = 0;
  }
  if constexpr (F == PixelFormat::kYUYV) {
    rgbx.resize(static_cast<std::size_t>(w));
    uint32_t* __restrict out = rgbx.data();
    for (int k = 0; k < w / 2; ++k) {
      const uint8_t* p = src + 4 * k;
      const YuvChroma uv = yuv_chroma(p[1], p[3]);
      const Rgb8 a = yuv_to_rgb(p[0], uv);
      const Rgb8 e = yuv_to_rgb(p[2], uv);
      out[2 * k] = uint32_t{a.r} | uint32_t{a.g} << 8 | uint32_t{a.b} << 16;
      out[2 * k + 1] = uint32_t{e.r} | uint32_t{e.g} << 8 | uint32_t{e.b} << 16;
    }
    t.base = reinterpret_cast<const uint8_t*>(rgbx.data());
  } else if (last_row) {
    const std::size_t bytes = static_cast<std::size_t>(w) * kBpp;
    pad.assign(bytes + 4, 0);
    std::memcpy(pad.data(), src, bytes);
    t.base = pad.data();
  }
  return t;
}

void normalize_lerp(const float* __restrict h0, const float* __restrict h1, int n, float wy, float gain, float bias,
                    float* __restrict d) {
  for (int j = 0; j < n; ++j) d[j] = normalize(lerp(h0[j], h1[j], wy), gain, bias);
}

template <PixelFormat F>
void run(const ImageView& im, const Geometry& g, const Affine& n, const float padf[3], const OutRows& out) {
  Scratch& s = scratch();
  const std::size_t plane_slot = static_cast<std::size_t>(3) * g.src_w;
  s.planes.resize(2 * plane_slot);
  auto src_row = [&](int sy) { return im.data + static_cast<std::ptrdiff_t>(sy) * im.row_stride; };

  // Border columns of one row, then the kernel fills the middle.
  auto begin_row = [&](int y, float* d[3]) {
    for (int c = 0; c < 3; ++c) {
      d[c] = out.row(c, y);
      std::fill_n(d[c], g.pad_x, padf[c]);
      std::fill_n(d[c] + g.pad_x + g.new_w, g.dst_w - g.pad_x - g.new_w, padf[c]);
      d[c] += g.pad_x;
    }
  };

  if (g.new_w == g.src_w && g.new_h == g.src_h) {
    for (int iy = 0; iy < g.new_h; ++iy) {
      float* d[3];
      begin_row(g.pad_y + iy, d);
      const Planes p = fetch_row<F>(src_row(iy), g.src_w, s.planes.data());
      for (int c = 0; c < 3; ++c) normalize_u8(p.c[c], g.new_w, n.gain[c], n.bias[c], d[c]);
      out.finish(g.pad_y + iy);
    }
  } else if (g.src_w == 2 * g.new_w && g.src_h == 2 * g.new_h) {
    for (int iy = 0; iy < g.new_h; ++iy) {
      float* d[3];
      begin_row(g.pad_y + iy, d);
      const Planes p0 = fetch_row<F>(src_row(2 * iy), g.src_w, s.planes.data());
      const Planes p1 = fetch_row<F>(src_row(2 * iy + 1), g.src_w, s.planes.data() + plane_slot);
      for (int c = 0; c < 3; ++c) normalize_half(p0.c[c], p1.c[c], g.new_w, n.gain[c], n.bias[c], d[c]);
      out.finish(g.pad_y + iy);
    }
  } else {
    const int nw = g.new_w;
    constexpr int kBpp = F == PixelFormat::kYUYV ? 4 : bytes_per_pixel(F);
    s.x0.resize(nw);
    s.x1.resize(nw);
    s.wx.resize(nw);
    for (int j = 0; j < nw; ++j) {
      const AxisTap t = axis_tap(j, g.src_w, nw);
      s.x0[j] = kBpp * t.i0;
      s.x1[j] = kBpp * t.i1;
      s.wx[j] = t.w;
    }
    const std::size_t hslot = static_cast<std::size_t>(3) * nw;
    s.hrows.resize(2 * hslot);
    int key[2] = {-1, -1};  // source row held by each slot of horizontally resampled rows
    auto ensure = [&](int sy, int slot) {
      const TapRow row = tap_row<F>(src_row(sy), g.src_w, sy == g.src_h - 1, s.planes, s.rgbx);
      resample_row(row, s.x0.data(), s.x1.data(), s.wx.data(), nw, s.hrows.data() + slot * hslot);
      key[slot] = sy;
    };
    for (int iy = 0; iy < g.new_h; ++iy) {
      const AxisTap t = axis_tap(iy, g.src_h, g.new_h);
      int s0 = key[0] == t.i0 ? 0 : (key[1] == t.i0 ? 1 : -1);
      if (s0 < 0) {
        s0 = key[0] == t.i1 ? 1 : 0;  // keep the slot that already holds the second tap
        ensure(t.i0, s0);
      }
      int s1 = key[0] == t.i1 ? 0 : (key[1] == t.i1 ? 1 : -1);
      if (s1 < 0) {
        s1 = 1 - s0;
        ensure(t.i1, s1);
      }
      float* d[3];
      begin_row(g.pad_y + iy, d);
      for (int c = 0; c < 3; ++c) {
        const float* h0 = s.hrows.data() + s0 * hslot + static_cast<std::size_t>(c) * nw;
        const float* h1 = s.hrows.data() + s1 * hslot + static_cast<std::size_t>(c) * nw;
        normalize_lerp(h0, h1, nw, t.w, n.gain[c], n.bias[c], d[c]);
      }
      out.finish(g.pad_y + iy);
    }
  }
}

template <PixelFormat F>
void run_reference(const ImageView& im, const Geometry& g, const Affine& n, float pad, OutType type, void* out) {
  const std::size_t plane = static_cast<std::size_t>(g.dst_h) * g.dst_w;
  for (int y = 0; y < g.dst_h; ++y) {
    for (int x = 0; x < g.dst_w; ++x) {
      float v[3];
      letterbox_pixel<F>(im.data, im.row_stride, g, n, pad, x, y, v);
      const std::size_t i = static_cast<std::size_t>(y) * g.dst_w + x;
      for (int c = 0; c < 3; ++c) {
        if (type == OutType::kFloat32) {
          static_cast<float*>(out)[c * plane + i] = v[c];
        } else {
          static_cast<uint16_t*>(out)[c * plane + i] = float_to_half_bits_soft(v[c]);
        }
      }
    }
  }
}

void check_image(const ImageView& im, const Geometry& g) {
  if (im.data == nullptr) throw std::invalid_argument("image data is null");
  if (im.height != g.src_h || im.width != g.src_w) {
    throw std::invalid_argument("geometry was computed for a " + std::to_string(g.src_h) + "x" +
                                std::to_string(g.src_w) + " image, got " + std::to_string(im.height) + "x" +
                                std::to_string(im.width));
  }
  if (im.format == PixelFormat::kYUYV && im.width % 2 != 0) {
    throw std::invalid_argument("yuyv image width must be even (pixels come in Y0 U Y1 V pairs), got " +
                                std::to_string(im.width));
  }
  if (im.row_stride < static_cast<std::ptrdiff_t>(im.width) * bytes_per_pixel(im.format)) {
    throw std::invalid_argument("image row stride " + std::to_string(im.row_stride) + " is shorter than a row");
  }
}

}  // namespace

void letterbox(const ImageView& image, const Geometry& g, const Affine& norm, uint8_t pad_value, OutType type,
               void* out) {
  check_image(image, g);
  Scratch& s = scratch();
  const OutRows rows(type, out, g, s.stage);
  float padf[3];
  for (int c = 0; c < 3; ++c) {
    padf[c] = normalize(static_cast<float>(pad_value), norm.gain[c], norm.bias[c]);
    rows.fill_rows(c, 0, g.pad_y, padf[c]);
    rows.fill_rows(c, g.pad_y + g.new_h, g.dst_h, padf[c]);
  }
  switch (image.format) {
    case PixelFormat::kRGB8:
      return run<PixelFormat::kRGB8>(image, g, norm, padf, rows);
    case PixelFormat::kBGR8:
      return run<PixelFormat::kBGR8>(image, g, norm, padf, rows);
    case PixelFormat::kYUYV:
      return run<PixelFormat::kYUYV>(image, g, norm, padf, rows);
    case PixelFormat::kGray:
      return run<PixelFormat::kGray>(image, g, norm, padf, rows);
  }
  throw std::invalid_argument("unknown pixel format " + std::to_string(static_cast<int>(image.format)));
}

void letterbox_reference(const ImageView& image, const Geometry& g, const Affine& norm, uint8_t pad_value,
                         OutType type, void* out) {
  check_image(image, g);
  const float pad = static_cast<float>(pad_value);
  switch (image.format) {
    case PixelFormat::kRGB8:
      return run_reference<PixelFormat::kRGB8>(image, g, norm, pad, type, out);
    case PixelFormat::kBGR8:
      return run_reference<PixelFormat::kBGR8>(image, g, norm, pad, type, out);
    case PixelFormat::kYUYV:
      return run_reference<PixelFormat::kYUYV>(image, g, norm, pad, type, out);
    case PixelFormat::kGray:
      return run_reference<PixelFormat::kGray>(image, g, norm, pad, type, out);
  }
  throw std::invalid_argument("unknown pixel format " + std::to_string(static_cast<int>(image.format)));
}

}  // namespace caper::preprocess
