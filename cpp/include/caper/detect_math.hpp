// Per-candidate math of the detection decode, shared by the C++ decode (cpp/src/detect) and the
// CUDA threshold-and-compact kernel (kernels/decode_compact.cu). Both paths call exactly these
// functions, so a CPU test of the decode covers the numbers the GPU produces too.
// No CUDA headers and no standard library beyond <cstdint>/<cstring>: nvcc compiles this for the
// device as well.
#pragma once

#include <cstdint>
#include <cstring>

#include "caper/hd.hpp"

namespace caper::detect {

// One compacted candidate: a row of the raw tensor that passed the score threshold. The box is
// kept both as corners (what the caller gets) and as (x1, y1, w, h) with the network's own w and h,
// which is what the OpenCV-compatible IoU uses (cv2.dnn.NMSBoxes receives x, y, w, h).
struct Candidate {
  float x1, y1, x2, y2;  // corners, pixels of the network input
  float w, h;            // width and height exactly as the network wrote them
  float score;           // best class score
  int32_t class_id;      // class with the best score (lowest id on ties)
  int32_t index;         // column of the raw tensor, 0 .. N-1: the tie-break of the score order
};

CAPER_HD inline uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

CAPER_HD inline float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

// IEEE binary16 -> binary32, exact for every input (normals, subnormals, +-0, inf, NaN). Written
// without branches so the CPU loop vectorizes: the 15 exponent+mantissa bits are moved into a
// float's field and rescaled by 2^112 (the exponent bias difference 127 - 15), which is exact,
// also for subnormal halves (unless the caller runs with denormals-are-zero, which only turns
// values below 6.1e-5 into 0). Inf/NaN (exponent all ones) get the float's all-ones exponent.
CAPER_HD inline float half_bits_to_float(uint16_t h) {
  const uint32_t magnitude = static_cast<uint32_t>(h) & 0x7fffu;
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  const uint32_t finite = float_bits(bits_float(magnitude << 13) * 0x1p112f);
  const uint32_t special = (magnitude << 13) | 0x7f800000u;
  return bits_float((magnitude >= 0x7c00u ? special : finite) | sign);
}

CAPER_HD inline float load_score(float v) { return v; }
CAPER_HD inline float load_score(uint16_t v) { return half_bits_to_float(v); }

// One step of the running arg-max over the class rows. `best` starts at -inf and `best_class` at
// 0; a NaN score never compares greater, so NaN class scores are skipped, and on equal scores the
// lower class id stays (as numpy.argmax).
CAPER_HD inline void running_max_step(float score, int32_t class_id, float& best, int32_t& best_class) {
  const bool take = score > best;
  best = take ? score : best;
  best_class = take ? class_id : best_class;
}

// The score threshold, as cv2.dnn.NMSBoxes applies it: strictly greater. NaN never passes.
CAPER_HD inline bool passes_threshold(float score, float threshold) { return score > threshold; }

CAPER_HD inline bool is_finite(float v) { return (float_bits(v) & 0x7f800000u) != 0x7f800000u; }

// A box with an inf or NaN coordinate is never a detection (an overflowing FP16 engine writes
// those); the decode drops it instead of letting NaN IoUs decide what it suppresses.
CAPER_HD inline bool box_is_finite(float cx, float cy, float w, float h) {
  return is_finite(cx) && is_finite(cy) && is_finite(w) && is_finite(h);
}

// (cx, cy, w, h) -> candidate. x1 = cx - w/2 is what the numpy reference computes for
// cv2.dnn.NMSBoxes, bit for bit (halving is exact).
CAPER_HD inline Candidate make_candidate(float cx, float cy, float w, float h, float score, int32_t class_id,
                                         int32_t index) {
  const float half_w = 0.5f * w;
  const float half_h = 0.5f * h;
  Candidate c;
  c.x1 = cx - half_w;
  c.y1 = cy - half_h;
  c.x2 = cx + half_w;
  c.y2 = cy + half_h;
  c.w = w;
  c.h = h;
  c.score = score;
  c.class_id = class_id;
  c.index = index;
  return c;
}

}  // namespace caper::detect
