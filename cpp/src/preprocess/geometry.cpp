// Letterbox geometry and the normalisation constants: the small, exactly specified part of the
// contract, kept apart from the pixel loops.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "caper/preprocess.hpp"

namespace caper::preprocess {

namespace {

void require_side(const char* what, int v) {
  if (v < 1 || v > kMaxSide) {
    throw std::invalid_argument(std::string(what) + " must be in 1.." + std::to_string(kMaxSide) + ", got " +
                                std::to_string(v));
  }
}

// round half to even (C's nearbyint under the default rounding mode, Python's round), then
// clamped so the resized image is never empty and never larger than the output.
int resized_side(double v, int dst) {
  const double rounded = std::nearbyint(v);
  if (rounded < 1.0) return 1;
  if (rounded > static_cast<double>(dst)) return dst;
  return static_cast<int>(rounded);
}

}  // namespace

Geometry letterbox_geometry(int src_h, int src_w, int dst_h, int dst_w) {
  require_side("image height", src_h);
  require_side("image width", src_w);
  require_side("output height", dst_h);
  require_side("output width", dst_w);
  Geometry g{};
  g.src_h = src_h;
  g.src_w = src_w;
  g.dst_h = dst_h;
  g.dst_w = dst_w;
  g.r = std::min(static_cast<double>(dst_h) / src_h, static_cast<double>(dst_w) / src_w);
  g.new_w = resized_side(src_w * g.r, dst_w);
  g.new_h = resized_side(src_h * g.r, dst_h);
  g.pad_x = (dst_w - g.new_w) / 2;
  g.pad_y = (dst_h - g.new_h) / 2;
  return g;
}

Affine make_affine(double scale, const double mean[3], const double std[3]) {
  if (!std::isfinite(scale)) throw std::invalid_argument("scale must be finite, got " + std::to_string(scale));
  Affine a{};
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(mean[c]) || !std::isfinite(std[c]) || std[c] == 0.0) {
      throw std::invalid_argument("mean must be finite and std finite and non-zero, got mean[" + std::to_string(c) +
                                  "]=" + std::to_string(mean[c]) + " std[" + std::to_string(c) +
                                  "]=" + std::to_string(std[c]));
    }
    a.gain[c] = static_cast<float>(scale / std[c]);
    a.bias[c] = static_cast<float>(-mean[c] / std[c]);
  }
  return a;
}

}  // namespace caper::preprocess
