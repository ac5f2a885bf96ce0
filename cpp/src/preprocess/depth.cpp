// Depth helpers: raw 16-bit depth to metres, and the median depth of the valid pixels in a box
// (robust to the zero holes and flying pixels a stereo depth camera produces around objects).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "caper/preprocess.hpp"

namespace caper::preprocess {

void depth_to_meters(const uint16_t* __restrict raw, std::size_t n, float depth_scale, float invalid_value,
                     float* __restrict out) {
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = raw[i] != 0 ? static_cast<float>(raw[i]) * depth_scale : invalid_value;
  }
}

namespace {

// Pixel range [lo, hi) along one axis covered by [a, b] after shrinking it about its centre.
bool covered_range(float a, float b, float fraction, int size, int* lo, int* hi) {
  if (!std::isfinite(a) || !std::isfinite(b)) return false;
  const double centre = 0.5 * (static_cast<double>(a) + b);
  const double half = 0.5 * (static_cast<double>(b) - a) * fraction;
  const double first = std::floor(centre - half);
  const double last = std::ceil(centre + half);
  *lo = static_cast<int>(std::clamp(first, 0.0, static_cast<double>(size)));
  *hi = static_cast<int>(std::clamp(last, 0.0, static_cast<double>(size)));
  return *hi > *lo;
}

// numpy.median of `v` (modified in place); v must not be empty.
double median_in_place(std::vector<uint16_t>& v) {
  const std::size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  const double upper = v[mid];
  if (v.size() % 2 == 1) return upper;
  // Even count: the lower middle is the largest element of the part before `mid`.
  const double lower = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
  return 0.5 * (lower + upper);
}

}  // namespace

void median_depth(const uint16_t* depth, int height, int width, const float* boxes, std::size_t n_boxes,
                  float depth_scale, float inner_fraction, float* out) {
  thread_local std::vector<uint16_t> values;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::size_t k = 0; k < n_boxes; ++k) {
    const float* b = boxes + 4 * k;
    int u0, u1, v0, v1;
    if (!covered_range(b[0], b[2], inner_fraction, width, &u0, &u1) ||
        !covered_range(b[1], b[3], inner_fraction, height, &v0, &v1)) {
      out[k] = nan;
      continue;
    }
    values.clear();
    for (int v = v0; v < v1; ++v) {
      const uint16_t* row = depth + static_cast<std::size_t>(v) * width;
      for (int u = u0; u < u1; ++u) {
        if (row[u] != 0) values.push_back(row[u]);
      }
    }
    out[k] = values.empty() ? nan : static_cast<float>(median_in_place(values) * depth_scale);
  }
}

}  // namespace caper::preprocess
