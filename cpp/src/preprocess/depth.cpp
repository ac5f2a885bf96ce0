// Depth helpers: raw 16-bit depth to metres, and the median depth of the valid pixels in a box
// (robust to the zero holes and flying pixels a stereo depth camera produces around objects).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "caper/preprocess.hpp"

namespace caper::preprocess {

void depth_to_meters(const uint16_t* __restrict raw, std::size_t n, float depth_scale, float invalid_value,
                     float* __restrict out) {
  // Multiply unconditionally, then select on the bits: GCC keeps a float `?:` as a branch (the
  // multiply could raise FP exceptions the branch avoids), which does not vectorise.
  uint32_t invalid_bits;
  std::memcpy(&invalid_bits, &invalid_value, sizeof invalid_bits);
  for (std::size_t i = 0; i < n; ++i) {
    const float metres = static_cast<float>(raw[i]) * depth_scale;
    uint32_t bits;
    std::memcpy(&bits, &metres, sizeof bits);
    const uint32_t keep = 0u - static_cast<uint32_t>(raw[i] != 0);
    bits = (bits & keep) | (invalid_bits & ~keep);
    std::memcpy(out + i, &bits, sizeof bits);
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

// Radix selection over 16-bit values: a histogram of the high bytes finds the bucket holding the
// wanted rank, a second pass histograms the low bytes of that bucket only. Two streaming passes
// over the box and no copy, where nth_element would first gather the values and then partition
// them several times; depth is spatially smooth, so the first histogram is split in four to
// keep consecutive increments of one bin from serialising on each other.
class BoxSelector {
 public:
  // Counts the non-zero values of the box; returns how many there are.
  uint32_t count(const uint16_t* depth, int width, int u0, int u1, int v0, int v1) {
    depth_ = depth;
    width_ = width;
    u0_ = u0;
    u1_ = u1;
    v0_ = v0;
    v1_ = v1;
    uint32_t hist[4][256] = {};
    uint32_t zeros = 0;
    for (int v = v0; v < v1; ++v) {
      const uint16_t* row = depth + static_cast<std::size_t>(v) * width;
      int u = u0;
      for (; u + 4 <= u1; u += 4) {
        for (int k = 0; k < 4; ++k) {
          ++hist[k][row[u + k] >> 8];
          zeros += row[u + k] == 0;
        }
      }
      for (; u < u1; ++u) {
        ++hist[0][row[u] >> 8];
        zeros += row[u] == 0;
      }
    }
    for (int b = 0; b < 256; ++b) hi_[b] = hist[0][b] + hist[1][b] + hist[2][b] + hist[3][b];
    hi_[0] -= zeros;  // zeros sit in bucket 0 and are not data
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) n += hi_[b];
    return n;
  }

  // The value of rank k (0-based, ascending) among the non-zero values.
  uint16_t select(uint32_t k) const {
    int bucket = 0;
    while (k >= hi_[bucket]) k -= hi_[bucket++];
    uint32_t lo[257] = {};  // bin 256 collects everything outside `bucket`
    const auto b = static_cast<uint32_t>(bucket);
    for (int v = v0_; v < v1_; ++v) {
      const uint16_t* row = depth_ + static_cast<std::size_t>(v) * width_;
      for (int u = u0_; u < u1_; ++u) {
        const uint32_t x = row[u];
        ++lo[(x >> 8) == b && x != 0 ? (x & 0xffu) : 256u];
      }
    }
    int low = 0;
    while (k >= lo[low]) k -= lo[low++];
    return static_cast<uint16_t>((bucket << 8) | low);
  }

 private:
  const uint16_t* depth_ = nullptr;
  int width_ = 0, u0_ = 0, u1_ = 0, v0_ = 0, v1_ = 0;
  uint32_t hi_[256] = {};
};

}  // namespace

void median_depth(const uint16_t* depth, int height, int width, const float* boxes, std::size_t n_boxes,
                  float depth_scale, float inner_fraction, float* out) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  BoxSelector sel;
  for (std::size_t k = 0; k < n_boxes; ++k) {
    const float* b = boxes + 4 * k;
    int u0, u1, v0, v1;
    if (!covered_range(b[0], b[2], inner_fraction, width, &u0, &u1) ||
        !covered_range(b[1], b[3], inner_fraction, height, &v0, &v1)) {
      out[k] = nan;
      continue;
    }
    const uint32_t n = sel.count(depth, width, u0, u1, v0, v1);
    if (n == 0) {
      out[k] = nan;
      continue;
    }
    // numpy.median: the middle value, or the mean of the two middle values for an even count.
    const double upper = sel.select(n / 2);
    const double median = n % 2 == 1 ? upper : 0.5 * (sel.select(n / 2 - 1) + upper);
    out[k] = static_cast<float>(median * depth_scale);
  }
}

}  // namespace caper::preprocess
